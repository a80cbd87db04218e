r"""A Fréchet distance for 8x8 digits: the FID idea with a small classifier of our own.

The Fréchet Inception Distance (Heusel et al., 2017) compares two sets of images through the
features a pretrained network extracts from them. Each set of features is summarised by a
Gaussian with the empirical mean and covariance, and the two Gaussians are compared with the
Fréchet (2-Wasserstein) distance between them,

    d^2 = ||mu_1 - mu_2||^2 + Tr( S_1 + S_2 - 2 (S_1^{1/2} S_2 S_1^{1/2})^{1/2} ).

Inception-v3 sees 299x299 colour photographs; it is useless for 8x8 digits. Here the feature
extractor is :class:`DigitClassifier`, a small convolutional network trained to recognise the
digit class on the TRAIN split of the book's fixed split (``scripts/train_digit_classifier.py``
makes the shipped checkpoint ``checkpoints/digit_classifier.pt``); the features are its
penultimate layer (64 numbers per image). Distances computed with it are comparable with each
other, inside this book, and with nothing else: they are not FID values.

Main entry points:

* :func:`frechet_distance` -- d^2 between two Gaussians (mean, covariance);
* :func:`feature_statistics` -- mean and covariance of a set of feature vectors;
* :class:`FrechetDigitDistance` -- load the shipped classifier once, then
  ``fd(samples, reference)`` gives d^2 between two sets of images;
* :func:`train_digit_classifier` / :func:`load_digit_classifier` / :func:`save_digit_classifier`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from diffusion_lib._checks import check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError
from diffusion_lib.utils import checkpoint_dir

__all__ = [
    "FEATURE_DIM",
    "DEFAULT_CLASSIFIER_PATH",
    "DigitClassifier",
    "ClassifierTrainResult",
    "train_digit_classifier",
    "save_digit_classifier",
    "load_digit_classifier",
    "classifier_accuracy",
    "feature_statistics",
    "frechet_distance",
    "FrechetDigitDistance",
]

#: Size of the penultimate layer of :class:`DigitClassifier`, i.e. of one feature vector.
FEATURE_DIM: int = 64
#: Where ``scripts/train_digit_classifier.py`` writes the shipped classifier.
DEFAULT_CLASSIFIER_PATH: Path = checkpoint_dir() / "digit_classifier.pt"


#: Largest |pixel| accepted as "on the [-1, 1] scale": a sampler may overshoot a little (unclipped
#: DDIM samples reach about 1.1), while pixel levels 0..16 or 0..255 are far beyond it.
_MAX_ABS_PIXEL = 2.0


def _check_images(images: torch.Tensor, name: str, minimum: int = 1) -> torch.Tensor:
    """``images`` as ``(N, 1, 8, 8)`` (an ``(N, 8, 8)`` batch gains its channel), float, finite, on the [-1, 1] scale."""
    if not isinstance(images, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor of shape (N, 1, 8, 8), got {type(images).__name__}")
    if images.ndim == 3 and tuple(images.shape[1:]) == (8, 8):
        images = images.unsqueeze(1)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 8, 8):
        raise InputValueError(
            f"{name} must be digit images of shape (N, 1, 8, 8) on the [-1, 1] scale, got shape "
            f"{tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise InputTypeError(
            f"{name} must be a float tensor on the [-1, 1] scale, got dtype {images.dtype}; convert "
            "pixel levels v in 0..16 with v / 8 - 1"
        )
    if images.shape[0] < minimum:
        raise InputValueError(f"{name} has {images.shape[0]} images, but at least {minimum} are needed")
    if images.numel() and not bool(torch.isfinite(images).all()):
        raise InputValueError(
            f"{name} contains NaN or infinite values; a sampler that diverged produces these - check "
            "the model and the sampler's settings"
        )
    if images.numel() and float(images.abs().max()) > _MAX_ABS_PIXEL:
        raise InputValueError(
            f"{name} has values up to {float(images.abs().max()):.3g}, which is not the [-1, 1] scale of the "
            f"digits (|x| <= {_MAX_ABS_PIXEL:g} is accepted, for a sampler's overshoot); map pixel levels v "
            "in 0..16 with v / 8 - 1, or 0..255 with v / 127.5 - 1"
        )
    return images


class DigitClassifier(nn.Module):
    """A small CNN for the 8x8 digits whose penultimate layer serves as the feature extractor.

    (B, 1, 8, 8) -> conv 3x3 (16) -> ReLU -> conv 3x3 stride 2 (32) -> ReLU -> flatten (512)
    -> linear (64) -> ReLU = **features** -> dropout -> linear (10) = class logits.

    ``forward(x)`` returns the logits; ``features(x)`` the 64-dimensional penultimate layer.
    Inputs are ``(B, 1, 8, 8)`` float images on the book's [-1, 1] scale, cast to the dtype of the
    weights. Both check shape and dtype only (they run inside loops, so they make no device
    sync): a NaN pixel gives NaN outputs; :func:`classifier_accuracy` and
    :class:`FrechetDigitDistance` refuse non-finite images.
    """

    def __init__(self, num_classes: int = 10, feature_dim: int = FEATURE_DIM, dropout: float = 0.2) -> None:
        super().__init__()
        num_classes = check_int(num_classes, "num_classes", minimum=2)
        feature_dim = check_int(feature_dim, "feature_dim", minimum=1)
        dropout = check_real(dropout, "dropout", minimum=0.0, maximum=1.0)
        if dropout == 1.0:
            raise InputValueError("dropout must be < 1 (with 1 every feature is dropped in training), got 1.0")
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, feature_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Shape and dtype check without a device sync: ``(B, 1, 8, 8)`` float, cast to the weights' dtype."""
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"x must be a torch.Tensor of shape (B, 1, 8, 8), got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise InputValueError(f"x must be digit images of shape (B, 1, 8, 8), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise InputTypeError(f"x must be a float tensor on the [-1, 1] scale, got dtype {x.dtype}")
        return x.to(self.fc.weight.dtype)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        return F.relu(self.fc(h.flatten(1)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate-layer features, shape (B, feature_dim), in the dtype of the weights."""
        return self._features(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape (B, num_classes), in the dtype of the weights (float32 or float64 input)."""
        return self.head(self.dropout(self._features(self._prepare(x))))


@dataclass
class ClassifierTrainResult:
    """What :func:`train_digit_classifier` returns: the model (in eval mode) and its history."""

    model: DigitClassifier
    losses: list[float]
    seconds: float
    train_accuracy: float


def _augment(x: torch.Tensor, generator: torch.Generator, max_shift: int, noise_std: float) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels (white padding) and add Gaussian noise."""
    if max_shift > 0:
        B = x.shape[0]
        padded = F.pad(x, (max_shift,) * 4, value=-1.0)
        dx = torch.randint(0, 2 * max_shift + 1, (B,), generator=generator)
        dy = torch.randint(0, 2 * max_shift + 1, (B,), generator=generator)
        rows = dy[:, None] + torch.arange(8)[None, :]  # (B, 8)
        cols = dx[:, None] + torch.arange(8)[None, :]
        b = torch.arange(B)[:, None, None]
        x = padded[b, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=generator)
    return x


def train_digit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    max_shift: int = 1,
    noise_std: float = 0.1,
    seed: int = 0,
    progress: bool = False,
) -> ClassifierTrainResult:
    """Train a :class:`DigitClassifier` with cross-entropy on ``(images, labels)``, with the book's one loop.

    The loop is :func:`diffusion_lib.train.loop.train` (AdamW with decoupled ``weight_decay``, the
    learning rate decaying with a cosine from ``lr`` to 0, NaN guard). Each step draws a minibatch
    with replacement (seeded), shifts every image by up to ``max_shift`` pixels and adds
    N(0, ``noise_std``^2) pixel noise, so that the features do not depend on exact pixel positions
    or on the small noise a sampler leaves behind. Deterministic for a given ``seed`` on one machine.

    Args:
        images: (N, 1, 8, 8) float images on the [-1, 1] scale (the TRAIN split in the book).
        labels: (N,) integer classes 0..9.
    """
    from diffusion_lib.train.loop import train

    images = _check_images(images, "images")
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32) or labels.ndim != 1:
        raise InputTypeError("labels must be a 1-D integer tensor (LongTensor) of digit classes 0..9")
    if labels.shape[0] != images.shape[0]:
        raise InputValueError(f"images and labels disagree: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise InputValueError(f"labels must be digit classes 0..9, got values from {int(labels.min())} to {int(labels.max())}")
    max_shift = check_int(max_shift, "max_shift", minimum=0)
    if max_shift > 7:
        raise InputValueError(f"max_shift must be at most 7 pixels (the images are 8x8), got {max_shift}")
    noise_std = check_real(noise_std, "noise_std", minimum=0.0)
    seed = check_int(seed, "seed", minimum=0)
    labels = labels.long()
    torch.manual_seed(seed)  # initial weights and dropout
    model = DigitClassifier()

    def loss_fn(net: nn.Module, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return F.cross_entropy(net(_augment(images[idx], gen, max_shift, noise_std)), labels[idx])

    run = train(model, loss_fn, torch.arange(images.shape[0]), steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                weight_decay=weight_decay, progress=progress, desc="training the digit classifier")
    acc = classifier_accuracy(model, images, labels)
    return ClassifierTrainResult(model=model, losses=run.losses, seconds=run.seconds, train_accuracy=acc)


def save_digit_classifier(model: DigitClassifier, path: str | Path, metadata: dict | None = None) -> Path:
    """Save the classifier in the book's one checkpoint format (:mod:`diffusion_lib.train.checkpoints`).

    ``metadata`` (plain values: training seed, steps, accuracies, ...) is stored as the file's
    metrics. Returns the path written.
    """
    from diffusion_lib.train.checkpoints import write_checkpoint

    if not isinstance(model, DigitClassifier):
        raise InputTypeError(f"model must be a DigitClassifier, got {type(model).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise InputTypeError(f"metadata must be a dict of plain values (or None), got {type(metadata).__name__}")
    config = {"num_classes": model.num_classes, "feature_dim": model.feature_dim}
    return write_checkpoint(path, "digit_classifier", config, model.state_dict(), metrics=metadata)


def load_digit_classifier(path: str | Path | None = None) -> DigitClassifier:
    """Load a classifier saved by :func:`save_digit_classifier` (default: the shipped one), in eval mode.

    Uses ``torch.load(..., weights_only=True)``, so a checkpoint cannot run code; a missing,
    damaged or foreign file raises :class:`~diffusion_lib.errors.CheckpointError`. The metadata
    (training seed, steps, accuracies) is attached as ``model.metadata``.
    """
    from diffusion_lib.errors import CheckpointError, DiffusionLibError
    from diffusion_lib.train.checkpoints import load_weights, read_checkpoint

    path = Path(path) if path is not None else DEFAULT_CLASSIFIER_PATH
    ckpt = read_checkpoint(path, "digit_classifier")
    config = ckpt["config"]
    try:
        model = DigitClassifier(num_classes=config["num_classes"], feature_dim=config["feature_dim"])
    except (DiffusionLibError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path} has a classifier config this library cannot build ({err!r}); write it again "
                              "with python scripts/train_digit_classifier.py --out <file>") from None
    load_weights(model, ckpt["model"], path)
    model.eval()
    model.metadata = dict(ckpt["metrics"])
    return model


def _check_batch_size(batch_size: int) -> int:
    return check_int(batch_size, "batch_size", minimum=1)


@torch.no_grad()
def classifier_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of ``images`` whose arg-max class equals ``labels`` (model in eval mode).

    Args:
        model: a classifier returning logits ``(B, C)``, e.g. a :class:`DigitClassifier`.
        images: ``(N, 1, 8, 8)`` float images on the [-1, 1] scale, N >= 1.
        labels: ``(N,)`` integer classes in ``0..C-1``.
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module classifier (e.g. a DigitClassifier), got {type(model).__name__}")
    images = _check_images(images, "images")
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise InputTypeError(
            f"labels must be an integer tensor of classes (torch.long), got "
            f"{labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise InputValueError(
            f"labels must have shape ({images.shape[0]},), one class per image, got shape {tuple(labels.shape)}"
        )
    batch_size = _check_batch_size(batch_size)
    params = next(model.parameters(), None)
    dtype = params.dtype if params is not None and params.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for i in range(0, images.shape[0], batch_size):
            logits = model(images[i : i + batch_size].to(dtype))
            if i == 0:
                if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                    raise InputValueError(
                        "model must return logits of shape (B, num_classes), got "
                        f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}"
                    )
                lo, hi = int(labels.min()), int(labels.max())
                if lo < 0 or hi >= logits.shape[1]:
                    raise InputValueError(
                        f"labels must lie in 0..{logits.shape[1] - 1} (the model has {logits.shape[1]} classes), "
                        f"got values from {lo} to {hi}"
                    )
            correct += int((logits.argmax(1) == labels[i : i + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / images.shape[0]


@torch.no_grad()
def _extract_features(model: DigitClassifier, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Penultimate-layer features of checked ``images``: a float64 tensor (N, feature_dim)."""
    was_training = model.training
    model.eval()
    try:
        feats = [model.features(images[i : i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(feats).double()


def _as_real_tensor(value: object, name: str) -> torch.Tensor:
    """``value`` (tensor or array, real dtype) as a float64 tensor; a library error otherwise."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise InputTypeError(f"{name} must hold real numbers, got a numpy array of dtype {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if value.dtype == torch.bool or value.is_complex():
        raise InputTypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
    return value.detach().cpu().double()


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (d,) and unbiased covariance (d, d) of feature vectors (N, d), in float64.

    mu = (1/N) sum_i f_i,  S = 1/(N-1) sum_i (f_i - mu)(f_i - mu)^T.  Needs N >= 2 finite rows.
    """
    f = _as_real_tensor(features, "features")
    if f.ndim != 2 or f.shape[1] < 1:
        raise InputValueError(
            f"features must have shape (N, d) with d >= 1 (one row per image), got {tuple(f.shape)}"
        )
    if f.shape[0] < 2:
        raise InputValueError(f"a covariance needs at least 2 feature vectors, got {f.shape[0]}")
    if not bool(torch.isfinite(f).all()):
        raise InputValueError("features contain NaN or infinite values; check the images they were computed from")
    mu = f.mean(0)
    centred = f - mu
    sigma = centred.T @ centred / (f.shape[0] - 1)
    return mu, sigma


def _sym_sqrt(m: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix via its eigendecomposition."""
    vals, vecs = torch.linalg.eigh(0.5 * (m + m.T))
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def _check_covariance(sigma: torch.Tensor, name: str, d: int, tol: float) -> None:
    """Refuse a matrix that is not a (d, d) symmetric positive semi-definite covariance, up to round-off ``tol``."""
    if tuple(sigma.shape) != (d, d):
        raise InputValueError(f"{name} must be a ({d}, {d}) covariance matrix to match the means, got {tuple(sigma.shape)}")
    scale = max(float(sigma.abs().max()), 1e-300)
    asym = float((sigma - sigma.T).abs().max())
    if asym > tol * scale:
        raise InputValueError(
            f"{name} is not symmetric (largest |S - S^T| = {asym:.3g}, relative {asym / scale:.2g}); a covariance "
            "is symmetric: compute it with feature_statistics"
        )
    low = float(torch.linalg.eigvalsh(0.5 * (sigma + sigma.T))[0])
    if low < -tol * scale:
        raise InputValueError(
            f"{name} is not positive semi-definite (smallest eigenvalue {low:.3g}, beyond the round-off "
            f"tolerance {tol * scale:.2g}); a covariance has no negative eigenvalue: compute it with feature_statistics"
        )


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    r"""Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

        d^2 = ||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr( (sigma1^{1/2} sigma2 sigma1^{1/2})^{1/2} ).

    The trace term uses the symmetric form (its eigenvalues equal those of sigma1 sigma2), computed
    in float64 with symmetric eigendecompositions, so there is no complex round-off to discard.
    Returns a Python float >= 0 (tiny negative round-off is clipped to 0).

    Means are vectors of one length d >= 1 and covariances ``(d, d)`` matrices (tensors or arrays,
    float32 or float64); a covariance must be symmetric and positive semi-definite up to the
    round-off of its dtype (relative tolerance sqrt(machine epsilon)), and every entry finite.
    """
    raw = {"mu1": mu1, "sigma1": sigma1, "mu2": mu2, "sigma2": sigma2}
    tols = {}
    tensors = {}
    for name, v in raw.items():
        t = _as_real_tensor(v, name)
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            eps = torch.finfo(v.dtype).eps
        elif isinstance(v, np.ndarray) and v.dtype.kind == "f":
            eps = float(np.finfo(v.dtype).eps)
        else:
            eps = torch.finfo(torch.float64).eps
        tols[name] = math.sqrt(eps)
        if not bool(torch.isfinite(t).all()):
            raise InputValueError(f"{name} contains NaN or infinite values; compute it with feature_statistics from finite features")
        tensors[name] = t
    mu1, sigma1, mu2, sigma2 = (tensors[k] for k in ("mu1", "sigma1", "mu2", "sigma2"))
    if mu1.ndim != 1 or mu1.shape[0] < 1 or mu2.shape != mu1.shape:
        raise InputValueError(
            f"mu1 and mu2 must be vectors of the same length d >= 1, got {tuple(mu1.shape)} and {tuple(mu2.shape)}"
        )
    d = mu1.shape[0]
    _check_covariance(sigma1, "sigma1", d, tols["sigma1"])
    _check_covariance(sigma2, "sigma2", d, tols["sigma2"])
    root1 = _sym_sqrt(sigma1)
    cross = root1 @ sigma2 @ root1
    vals = torch.linalg.eigvalsh(0.5 * (cross + cross.T)).clamp(min=0)
    value = float(((mu1 - mu2) ** 2).sum() + torch.trace(sigma1) + torch.trace(sigma2) - 2 * vals.sqrt().sum())
    return max(value, 0.0)


Statistics = tuple[torch.Tensor, torch.Tensor]


class FrechetDigitDistance:
    """Fréchet distance between sets of digit images in the feature space of a :class:`DigitClassifier`.

    ``fd = FrechetDigitDistance()`` loads the shipped classifier; ``fd(samples, reference)``
    returns d^2 between the two sets (see :func:`frechet_distance`). Reference statistics can be
    cached: ``ref = fd.statistics(test_images)`` then ``fd(samples, ref)``.

    Before the features are extracted, every image is clipped to [-1, 1] and rounded to the
    data's 17 pixel levels, as a sampler's output would be stored as an image (the real digits
    are unchanged by it).

    Args:
        classifier: a trained :class:`DigitClassifier`; by default :func:`load_digit_classifier`.

    The distance depends on the number of images (the covariance estimate is noisy): compare
    only numbers computed with the same set sizes, and report the real-vs-real floor next to them.
    """

    def __init__(self, classifier: DigitClassifier | None = None) -> None:
        if classifier is not None and not isinstance(classifier, DigitClassifier):
            raise InputTypeError(
                f"classifier must be a DigitClassifier (or None for the shipped one), got {type(classifier).__name__}"
            )
        self.classifier = classifier if classifier is not None else load_digit_classifier()
        self.classifier.eval()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Features (N, feature_dim), float64, of ``images`` (N, 1, 8, 8) on the [-1, 1] scale, after quantizing."""
        from diffusion_lib.data import quantize_digits

        images = _check_images(images, "images")
        return _extract_features(self.classifier, quantize_digits(images))

    def statistics(self, images: torch.Tensor) -> Statistics:
        """(mu, sigma) of the features of ``images`` (at least 2 images)."""
        return feature_statistics(self.features(_check_images(images, "images", minimum=2)))

    def _as_statistics(self, value: torch.Tensor | Statistics, name: str) -> Statistics:
        if isinstance(value, tuple):
            if len(value) != 2:
                raise InputValueError(
                    f"{name} must be images (N, 1, 8, 8) or a pair (mu, sigma) from fd.statistics, got a tuple of {len(value)}"
                )
            return value
        return self.statistics(value)

    def floor(
        self,
        n: int,
        reference: torch.Tensor | Statistics,
        real: torch.Tensor | None = None,
        repeats: int = 5,
        seed: int = 0,
    ) -> tuple[float, float]:
        """The real-vs-real floor for sets of ``n`` images: mean and standard deviation of d^2 over
        ``repeats`` random subsets of ``n`` images of ``real`` (default: the TRAIN split, the data
        the models learn from), each compared with ``reference``.

        A model that reproduced its training distribution exactly would score about this much with
        ``n`` samples; the spread shows how much d^2 moves between sets of that size.
        """
        if real is None:
            from diffusion_lib.data import load_digits_split

            real = load_digits_split("train")[0]
        real = _check_images(real, "real", minimum=2)
        n = check_int(n, "n")
        if not 2 <= n <= real.shape[0]:
            raise InputValueError(f"n must lie between 2 and the number of real images ({real.shape[0]}), got {n}")
        repeats = check_int(repeats, "repeats", minimum=1)
        seed = check_int(seed, "seed", minimum=0)
        ref = self._as_statistics(reference, "reference")
        g = torch.Generator().manual_seed(seed)
        values = torch.tensor([self(real[torch.randperm(real.shape[0], generator=g)[:n]], ref) for _ in range(repeats)])
        return float(values.mean()), float(values.std()) if repeats > 1 else 0.0

    def __call__(self, images: torch.Tensor | Statistics, reference: torch.Tensor | Statistics) -> float:
        """d^2 between two image sets (each an (N, 1, 8, 8) tensor with N >= 2, or precomputed (mu, sigma))."""
        s1 = self._as_statistics(images, "images")
        s2 = self._as_statistics(reference, "reference")
        return frechet_distance(s1[0], s1[1], s2[0], s2[1])
