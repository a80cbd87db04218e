r"""Image DDPM training runs that can be saved, resumed bit-identically and shipped.

A *run* is described by one plain configuration dict (ints, floats, strings, lists, dicts; see
:data:`DEFAULT_CONFIG`): the data, the noise schedule, the loss, the U-Net and the optimiser
settings. From it, :func:`make_model` and :func:`make_diffusion` build the network and the
:class:`~diffusion_lib.core.diffusion.GaussianDiffusion`, and :func:`train_run` trains with the book's
generic loop :func:`diffusion_lib.train.loop.train` (EMA, progress bar, NaN guard).

Checkpoint files
----------------
:func:`save_checkpoint` writes a dict that ``torch.load(path, weights_only=True)`` reads back
without unpickling any Python object:

* ``"format"``: ``"diffusion_lib.checkpoint"``, ``"version"``: 1;
* ``"config"``: the run's configuration dict (plain values only);
* ``"model"``: the U-Net's ``state_dict``; ``"ema"``: the EMA weights (or ``None``);
* ``"train_state"``: the optimiser state, the random generator's state, the step and the loss
  history (``TrainResult.state``), so :func:`train_run` can continue bit-identically; ``None`` in a
  shipped file;
* ``"metrics"``: plain numbers measured on the model (test bound in nats, ...);
* ``"dtype"``: ``"float32"`` or ``"float16"`` -- a shipped file stores half-precision weights
  to stay small; :func:`load_checkpoint` converts them back to float32.

Resume = bit-identical
----------------------
Training ``N`` steps in one go, or ``k`` steps, saving, loading in a fresh process and training
the remaining ``N - k``, gives exactly the same weights: the checkpoint holds every piece of state
the loop uses (weights, Adam moments and step counts, EMA weights, the ``torch.Generator`` that
draws batches, timesteps and noise). ``tests/test_checkpoints.py`` checks this.
"""

from __future__ import annotations

import copy
import math
import numbers
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion_lib.data import DIGITS_NUM_LEVELS, load_digits_split
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.models.unet import UNet
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.core.timesteps import TIMESTEP_SAMPLINGS, sample_timesteps, timestep_probs
from diffusion_lib.train.loop import TrainResult, train
from diffusion_lib.utils import checkpoint_dir

__all__ = [
    "DEFAULT_CONFIG",
    "LOSSES",
    "CHECKPOINT_DIR",
    "make_config",
    "make_model",
    "make_diffusion",
    "diffusion_loss_fn",
    "train_run",
    "save_checkpoint",
    "load_checkpoint",
    "load_pretrained",
    "test_bound",
]

#: Where the shipped checkpoints live: the repository's ``checkpoints/`` folder, or
#: ``$DIFFUSION_BOOK_CHECKPOINTS`` when set (see :func:`diffusion_lib.utils.checkpoint_dir`).
CHECKPOINT_DIR = checkpoint_dir()

#: ``--loss`` names of ``scripts/train_digits.py`` -> (loss_type, model_var_type) of GaussianDiffusion.
LOSSES: dict[str, tuple[str, str]] = {
    "simple": ("l2", "fixed_large"),  # L_simple of DDPM, sigma_t^2 = beta_t
    "vlb": ("kl", "learned_range"),  # the variational bound alone, learned variances
    "hybrid": ("hybrid", "learned_range"),  # L_simple + 0.001 L_vlb (Nichol & Dhariwal, 2021)
}

DEFAULT_CONFIG: dict[str, Any] = {
    "data": "digits",  # the train split of diffusion_lib.data.load_digits_split
    "T": 1000,
    "schedule": "linear",
    "loss": "hybrid",
    "model_mean_type": "eps",
    "steps": 4000,
    "batch_size": 128,
    "lr": 2e-3,
    "warmup_steps": 200,
    "grad_clip": 1.0,
    "ema_decay": 0.999,
    "ema_warmup": True,  # decay min(0.999, (1 + n) / (10 + n)) after n steps
    "t_sampling": "uniform",  # or "inverse_mix": see diffusion_lib.core.timesteps
    "seed": 0,
    "conditional": False,
    "p_uncond": 0.1,  # label dropout (classifier-free guidance) when conditional
    "model": {"dim": 32, "dim_mults": [1, 2], "block_type": "resnet", "attention": "linear",
              "mid_attention": "full", "groups": 8},
}

_FORMAT = "diffusion_lib.checkpoint"
_VERSION = 1


def _check_plain(value: Any, where: str) -> None:
    """Raise unless ``value`` is built only from None/bool/int/float/str/list/tuple/dict."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, numbers.Number) and not isinstance(value, complex):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: dictionary keys must be strings, got {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; a checkpoint's config may hold only numbers, strings, "
        "booleans, None, lists and dicts (so that torch.load(..., weights_only=True) can read it)"
    )


def make_config(**overrides: Any) -> dict:
    """:data:`DEFAULT_CONFIG` with ``overrides`` applied (``model=`` entries merge into the model dict)."""
    config = copy.deepcopy(DEFAULT_CONFIG)
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}; known keys: {sorted(config)}")
    model = overrides.pop("model", None)
    config.update(overrides)
    if model:
        config["model"] = {**config["model"], **model}
    if config["loss"] not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {config['loss']!r}")
    if config["t_sampling"] not in TIMESTEP_SAMPLINGS:
        raise ValueError(f"t_sampling must be one of {TIMESTEP_SAMPLINGS}, got {config['t_sampling']!r}")
    if config["data"] != "digits":
        raise ValueError(f"data must be 'digits' (the only data set shipped with the book), got {config['data']!r}")
    _check_plain(config, "config")
    return config


def make_model(config: dict) -> UNet:
    """The U-Net of a run: 1 input channel, ``num_timesteps = T``, 10 classes if conditional."""
    kwargs = dict(config["model"])
    kwargs.setdefault("in_channels", 1)
    kwargs["num_timesteps"] = int(config["T"])
    if config.get("conditional"):
        kwargs["num_classes"] = 10
    kwargs["learned_variance"] = LOSSES[config["loss"]][1] == "learned_range"
    return UNet(**kwargs)


def make_diffusion(config: dict, model_var_type: str | None = None) -> GaussianDiffusion:
    """The :class:`GaussianDiffusion` of a run (``model_var_type`` overrides the loss's default)."""
    loss_type, var_type = LOSSES[config["loss"]]
    schedule = NoiseSchedule.from_name(config["schedule"], int(config["T"]))
    return GaussianDiffusion(schedule, model_mean_type=config["model_mean_type"],
                             model_var_type=model_var_type or var_type, loss_type=loss_type)


def diffusion_loss_fn(diffusion: GaussianDiffusion, images: torch.Tensor, labels: torch.Tensor | None = None,
                      num_classes: int = 10, p_uncond: float = 0.0, t_sampling: str = "uniform"):
    """A ``loss_fn(model, idx, g)`` for :func:`diffusion_lib.train.loop.train` that trains on ``images[idx]``.

    The training loop draws a batch of *indices* (pass ``torch.arange(len(images))`` as its data),
    so that the labels of the same images are at hand. With ``labels``, each label is replaced by
    the null label ``num_classes`` with probability ``p_uncond`` (classifier-free guidance training).
    ``t_sampling``: how the timesteps are drawn (:data:`diffusion_lib.core.timesteps.TIMESTEP_SAMPLINGS`);
    the bound term is importance-weighted so that it stays an unbiased estimate of L_vlb.
    The discretised decoder uses the digits' 17 levels.
    """
    if not 0.0 <= p_uncond < 1.0:
        raise ValueError(f"p_uncond must lie in [0, 1), got {p_uncond}")

    probs = timestep_probs(diffusion.T, t_sampling)

    def loss_fn(model: nn.Module, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x0 = images[idx]
        t, w = None, None
        if t_sampling != "uniform":
            t, w = sample_timesteps(probs, x0.shape[0], g)
        kwargs = {}
        if labels is not None:
            y = labels[idx]
            if p_uncond > 0:
                drop = torch.rand(y.shape, generator=g) < p_uncond
                y = torch.where(drop, torch.full_like(y, num_classes), y)
            kwargs["y"] = y
        out = diffusion.training_losses(model, x0, t=t, model_kwargs=kwargs, generator=g, num_levels=DIGITS_NUM_LEVELS,
                                        vb_weights=w)
        return out["loss"].mean()

    return loss_fn


def train_run(config: dict, model: UNet | None = None, resume: dict | None = None, stop_at: int | None = None,
              progress: bool = True, time_budget_s: float | None = None) -> tuple[UNet, TrainResult]:
    """Train (or continue) the run ``config``; return ``(model, TrainResult)``.

    Without ``model`` a fresh U-Net is built after seeding torch with ``config["seed"]`` (so its
    initial weights are reproducible). ``resume``: a checkpoint dict from :func:`load_checkpoint`
    (its weights and training state are restored). ``stop_at``: stop after this many steps in
    total, e.g. to save a checkpoint and continue later.
    """
    if resume is not None:
        if resume.get("train_state") is None:
            raise ValueError("this checkpoint has no training state (a shipped, weights-only file); it cannot be resumed")
        config = resume["config"]
    if model is None:
        torch.manual_seed(int(config["seed"]))
        model = make_model(config)
    if resume is not None:
        model.load_state_dict(resume["model"])
    diffusion = make_diffusion(config)
    images, labels = load_digits_split("train")
    loss_fn = diffusion_loss_fn(diffusion, images, labels if config["conditional"] else None,
                                p_uncond=float(config["p_uncond"]), t_sampling=config.get("t_sampling", "uniform"))
    result = train(
        model, loss_fn, torch.arange(images.shape[0]), steps=int(config["steps"]),
        batch_size=int(config["batch_size"]), lr=float(config["lr"]), seed=int(config["seed"]),
        warmup_steps=int(config["warmup_steps"]), grad_clip=config["grad_clip"],
        ema_decay=config["ema_decay"], ema_warmup=bool(config.get("ema_warmup", False)),  # False in older files
        progress=progress, desc=f"DDPM on digits ({config['loss']})",
        resume=None if resume is None else resume["train_state"], stop_at=stop_at, time_budget_s=time_budget_s,
    )
    return model, result


def save_checkpoint(path: str | Path, model: UNet, config: dict, result: TrainResult | None = None,
                    half: bool = False, include_train_state: bool = True, metrics: dict | None = None) -> Path:
    """Write a checkpoint (format in the module docstring) and return its path.

    ``half=True`` stores float16 weights -- only the EMA weights when there are any, under
    ``"model"`` -- and no training state: a small file for shipping, which cannot be resumed.
    ``metrics``: plain numbers (or lists of them) to store with it.
    """
    _check_plain(config, "config")
    _check_plain(metrics or {}, "metrics")

    def weights(module_or_sd: Any) -> dict:
        sd = module_or_sd.state_dict() if isinstance(module_or_sd, nn.Module) else module_or_sd
        return {k: (v.detach().to(torch.float16) if half and v.is_floating_point() else v.detach().clone())
                for k, v in sd.items()}

    ema = None
    if result is not None and result.ema_model is not None:
        ema = weights(result.ema_model)
    model_weights = weights(model)
    if half and ema is not None:
        model_weights, ema = ema, None  # a shipped file keeps only the (better) EMA weights
    train_state = None
    if include_train_state and not half and result is not None:
        train_state = result.state
    payload = {
        "format": _FORMAT, "version": _VERSION, "config": config, "model": model_weights, "ema": ema,
        "train_state": train_state, "metrics": dict(metrics or {}), "dtype": "float16" if half else "float32",
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``; float16 weights become float32."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}. The shipped ones are in {CHECKPOINT_DIR}; to make one, run "
            "python scripts/train_digits.py --out <file> (see checkpoints/README.md)"
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a diffusion_lib checkpoint (written by save_checkpoint)")
    if ckpt.get("version") != _VERSION:
        raise ValueError(f"{path} has checkpoint version {ckpt.get('version')}, this library reads version {_VERSION}")
    for key in ("model", "ema"):
        if ckpt.get(key) is not None:
            ckpt[key] = {k: (v.float() if v.is_floating_point() else v) for k, v in ckpt[key].items()}
    return ckpt


def load_pretrained(name_or_path: str | Path = "ddpm_digits.pt", use_ema: bool = True,
                    model_var_type: str | None = None) -> tuple[UNet, GaussianDiffusion, dict]:
    """Load a checkpoint; return ``(model in eval mode, its GaussianDiffusion, the checkpoint dict)``.

    ``name_or_path``: a file name in the repository's ``checkpoints/`` folder or any path.
    ``use_ema``: use the EMA weights when the file has them (the better model).
    """
    path = Path(name_or_path)
    if not path.is_file() and (CHECKPOINT_DIR / path).is_file():
        path = CHECKPOINT_DIR / path
    ckpt = load_checkpoint(path)
    model = make_model(ckpt["config"])
    weights = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(weights)
    model.eval()
    return model, make_diffusion(ckpt["config"], model_var_type), ckpt


def test_bound(model: nn.Module, diffusion: GaussianDiffusion, split: str = "test", batch_size: int = 500,
               seed: int = 0, progress: bool = False, model_kwargs: dict | None = None,
               limit: int | None = None, clip_x0: bool = False) -> dict[str, float]:
    """The variational bound on ``-log p(x_0)`` over a digits split: mean nats per image and bits/dim.

    Uses :meth:`GaussianDiffusion.variational_bound` with the discretised decoder over the 17
    pixel levels (one draw of x_t per t, from a generator seeded with ``seed``); ``limit`` uses
    only the first ``limit`` images of the split. ``clip_x0`` clips the model's prediction of x_0 to
    [-1, 1] inside every reverse step: a different but equally valid reverse process (the one a
    sampler with ``clip_x0=True`` uses), so the result is still a bound on its -log p. Returns
    ``{"nats": mean bound, "nats_se": its standard error, "bits_per_dim": ..., "n": images}``.
    """
    images, _ = load_digits_split(split)
    if limit is not None:
        images = images[:limit]
    g = torch.Generator().manual_seed(seed)
    totals = []
    for start in range(0, images.shape[0], batch_size):
        x0 = images[start:start + batch_size]
        out = diffusion.variational_bound(model, x0, decoder="discretized", num_levels=DIGITS_NUM_LEVELS,
                                          generator=g, progress=progress, model_kwargs=model_kwargs,
                                          clip_x0=clip_x0)
        totals.append(out["total"])
    total = torch.cat(totals).double()
    nats = total.mean().item()
    return {"nats": nats, "nats_se": (total.std() / math.sqrt(total.numel())).item(),
            "bits_per_dim": nats / (images[0].numel() * math.log(2.0)), "n": int(total.numel())}


test_bound.__test__ = False  # not a pytest test, despite the name
