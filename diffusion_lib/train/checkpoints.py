r"""The one checkpoint format of the book: every saved model (the digit U-Nets and the digit
classifier behind the Fréchet distance) is one file of this kind.

Checkpoint files
----------------
:func:`write_checkpoint` stores a dict that ``torch.load(path, weights_only=True)`` reads back
without unpickling any Python object:

* ``"format"``: ``"diffusion_lib.checkpoint"``, ``"version"``: 2;
* ``"kind"``: which model it holds, ``"ddpm_unet"`` or ``"digit_classifier"`` (:data:`KINDS`);
* ``"config"``: the plain dict that rebuilds the model (a run's config for a U-Net,
  ``{"num_classes", "feature_dim"}`` for the classifier);
* ``"model"``: its ``state_dict``; ``"ema"``: the EMA weights (or ``None``);
* ``"train_state"``: the optimiser state, the random generator's state, the step and the loss
  history (``TrainResult.state``), so training can continue bit-identically; ``None`` in a
  shipped file;
* ``"metrics"``: plain values measured on the model (test bound in nats, accuracies, ...);
* ``"dtype"``: ``"float32"`` or ``"float16"`` -- a shipped file stores half-precision weights
  to stay small; :func:`read_checkpoint` converts them back to float32.

Version-1 files (U-Net checkpoints written before the ``"kind"`` field) are still read.

Every way a file can be wrong -- missing, empty, truncated, random bytes, a torch file that is not
ours, another kind of model, a config this library cannot build -- raises one
:class:`~diffusion_lib.errors.CheckpointError` whose single sentence names the file, says what is
wrong and what to do. What :func:`save_checkpoint` writes, :func:`load_checkpoint` reads: configs
and metrics are normalised to plain Python values (NumPy scalars included) before writing.

Resume = bit-identical
----------------------
Training ``N`` steps in one go, or ``k`` steps, saving, loading in a fresh process and training
the remaining ``N - k``, gives exactly the same weights: the checkpoint holds every piece of state
the loop uses (weights, Adam moments and step counts, EMA weights, the ``torch.Generator`` that
draws batches, timesteps and noise). ``tests/test_checkpoints.py`` checks this.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.errors import CheckpointError, DiffusionLibError, InputTypeError, NonFiniteError
from diffusion_lib.models.unet import UNet
from diffusion_lib.train.config import _plain, validate_config
from diffusion_lib.train.factories import make_diffusion, make_model
from diffusion_lib.train.loop import TrainResult
from diffusion_lib.utils import checkpoint_dir

__all__ = [
    "CHECKPOINT_DIR",
    "KINDS",
    "write_checkpoint",
    "read_checkpoint",
    "load_weights",
    "save_checkpoint",
    "load_checkpoint",
    "load_pretrained",
]

#: Where the shipped checkpoints live: the repository's ``checkpoints/`` folder, or
#: ``$DIFFUSION_BOOK_CHECKPOINTS`` when set (see :func:`diffusion_lib.utils.checkpoint_dir`).
CHECKPOINT_DIR = checkpoint_dir()

#: The kinds of model a checkpoint holds, each with the command that writes one.
KINDS: dict[str, str] = {
    "ddpm_unet": "python scripts/train_digits.py --out <file> (see checkpoints/README.md)",
    "digit_classifier": "python scripts/train_digit_classifier.py --out <file>",
}

_FORMAT = "diffusion_lib.checkpoint"
_VERSION = 2
_KEYS = ("config", "model", "ema", "train_state", "metrics", "dtype")
#: keys added to the run config after version 1; a file without them was trained without them
_LEGACY_CONFIG = {"ema_warmup": False, "t_sampling": "uniform"}


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InputTypeError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return kind


def _weights(state: dict, half: bool, where: str) -> dict[str, torch.Tensor]:
    """Detached CPU copies of a state dict (float16 when ``half``); refuse non-finite weights."""
    if not isinstance(state, dict):
        raise InputTypeError(f"{where} must be a state dict (model.state_dict()), got {type(state).__name__}")
    out = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise InputTypeError(f"{where}[{k!r}] is a {type(v).__name__}, not a tensor; pass model.state_dict()")
        v = v.detach().cpu()
        if v.is_floating_point():
            if not bool(torch.isfinite(v).all()):
                raise NonFiniteError(f"{where}[{k!r}] contains NaN or inf; a model with non-finite weights is not "
                                     "saved (it could not be used): train again with a lower learning rate")
            if half:
                v = v.to(torch.float16)
                if not bool(torch.isfinite(v).all()):
                    raise NonFiniteError(f"{where}[{k!r}] has values beyond float16's range (65504); save it with half=False")
        out[k] = v.clone()
    return out


def write_checkpoint(path: str | Path, kind: str, config: dict, model: dict, ema: dict | None = None,
                     train_state: dict | None = None, metrics: dict | None = None, half: bool = False) -> Path:
    """Write one checkpoint file (format in the module docstring) atomically; return its path.

    ``model`` / ``ema`` are state dicts; ``half=True`` stores their floating-point tensors as
    float16. ``config`` and ``metrics`` must be plain values (NumPy scalars are converted).
    """
    _check_kind(kind)
    payload = {
        "format": _FORMAT, "version": _VERSION, "kind": kind, "config": _plain(config, "config"),
        "model": _weights(model, half, "model"), "ema": None if ema is None else _weights(ema, half, "ema"),
        "train_state": train_state, "metrics": _plain(dict(metrics or {}), "metrics"),
        "dtype": "float16" if half else "float32",
    }
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, tmp)
        tmp.replace(path)  # never leave a half-written checkpoint behind
    except OSError as err:
        raise CheckpointError(f"cannot write the checkpoint {path} ({err.strerror or err}): choose a folder "
                              "you can write to, with free space") from None
    return path


def _unreadable(path: Path, what: str, kind: str) -> CheckpointError:
    return CheckpointError(f"cannot load the checkpoint {path}: {what}; restore the file (the shipped ones: "
                           f"git checkout checkpoints/) or write it again with {KINDS[kind]}")


def read_checkpoint(path: str | Path, kind: str) -> dict:
    """Read a checkpoint of ``kind`` with ``torch.load(..., weights_only=True)``; float16 weights become float32.

    Raises :class:`~diffusion_lib.errors.CheckpointError` (one sentence: the file, what is wrong,
    what to do) for a missing, empty, damaged, foreign or other-kind file.
    """
    _check_kind(kind)
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"there is no checkpoint file at {path}: check the name (the shipped ones are in "
                              f"{CHECKPOINT_DIR}) or make one with {KINDS[kind]}")
    if path.stat().st_size == 0:
        raise _unreadable(path, "the file is empty (0 bytes), e.g. from an interrupted copy", kind)
    with open(path, "rb") as f:
        head = f.read(4)
    zipped = head == b"PK\x03\x04"  # torch.save writes a zip archive
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- torch raises many kinds for damaged files
        if not zipped and not head.startswith(b"\x80"):
            what = "it is not a PyTorch file (random or foreign bytes)"
        elif isinstance(err, pickle.UnpicklingError):
            what = ("it holds Python objects other than tensors and plain values, so it was not written by this "
                    "library and is not loaded (loading it could run code)")
        else:
            what = "the file is truncated or damaged (torch cannot read its archive)"
        raise _unreadable(path, what, kind) from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise _unreadable(path, "it is a valid torch file but not a diffusion_lib checkpoint (it has no "
                                f"format='{_FORMAT}' entry)", kind)
    version = payload.get("version")
    if version not in (1, _VERSION):
        raise _unreadable(path, f"it has checkpoint version {version!r}, and this library reads versions 1 and {_VERSION}", kind)
    file_kind = payload.get("kind", "ddpm_unet")
    if file_kind != kind:
        raise CheckpointError(f"{path} holds a {file_kind!r} model, not a {kind!r} one: pass the right file "
                              f"(a {kind!r} checkpoint is written by {KINDS[kind]})")
    missing = [k for k in _KEYS if k not in payload]
    if missing or not isinstance(payload["model"], dict) or not isinstance(payload["metrics"], dict):
        raise _unreadable(path, f"its entries are incomplete (missing {missing or 'a weights dict'})", kind)
    if kind == "ddpm_unet":
        config = payload["config"]
        if version == 1 and isinstance(config, dict):
            config = {**_LEGACY_CONFIG, **config}
        try:
            payload["config"] = validate_config(config, "the file's config")
        except DiffusionLibError as err:
            raise CheckpointError(f"{path} was written for another model or library version, its config "
                                  f"cannot be used ({err}); retrain it with {KINDS[kind]}") from None
    payload["kind"], payload["version"] = kind, _VERSION
    for key in ("model", "ema"):
        sd = payload.get(key)
        if sd is None:
            continue
        if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise _unreadable(path, f"its '{key}' entry is not a dict of weight tensors", kind)
        bad = [k for k, v in sd.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise _unreadable(path, f"its weight {bad[0]!r} contains NaN or inf", kind)
        payload[key] = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    return payload


def load_weights(module: nn.Module, weights: dict, path: str | Path) -> nn.Module:
    """``module.load_state_dict(weights)``, with a mismatch reported as one :class:`CheckpointError`."""
    if not isinstance(module, nn.Module):
        raise InputTypeError(f"module must be the torch.nn.Module to fill (e.g. make_model(config)), got {type(module).__name__}")
    if not isinstance(weights, dict):
        raise InputTypeError(f"weights must be a state dict (read_checkpoint(path, kind)['model']), got {type(weights).__name__}")
    try:
        module.load_state_dict(weights)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise CheckpointError(f"the weights in {path} do not fit the model its config describes ({detail}); "
                              "the file was written by another version of the model: retrain or restore it") from None
    return module


def save_checkpoint(path: str | Path, model: UNet, config: dict, result: TrainResult | None = None,
                    half: bool = False, metrics: dict | None = None) -> Path:
    """Write a U-Net run's checkpoint (format in the module docstring) and return its path.

    ``half=True`` stores float16 weights -- only the EMA weights when there are any, under
    ``"model"`` -- and no training state: a small file for shipping, which cannot be resumed.
    ``metrics``: plain numbers (or lists of them) to store with it. The config is validated and
    normalised (NumPy scalars become Python numbers), so :func:`load_checkpoint` reads it back.
    """
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be the run's torch.nn.Module (a UNet), got {type(model).__name__}")
    if result is not None and not isinstance(result, TrainResult):
        raise InputTypeError(f"result must be the TrainResult of the run (or None), got {type(result).__name__}")
    config = validate_config(config)
    ema = None
    if result is not None and result.ema_model is not None:
        ema = result.ema_model.state_dict()
    model_weights = model.state_dict()
    if half and ema is not None:
        model_weights, ema = ema, None  # a shipped file keeps only the (better) EMA weights
    train_state = result.state if (result is not None and not half) else None
    return write_checkpoint(path, "ddpm_unet", config, model_weights, ema, train_state, metrics, half=half)


def load_checkpoint(path: str | Path) -> dict:
    """Read a U-Net run's checkpoint with ``torch.load(..., weights_only=True)``; float16 weights become float32."""
    return read_checkpoint(path, "ddpm_unet")


def load_pretrained(name_or_path: str | Path = "ddpm_digits.pt", use_ema: bool = True,
                    model_var_type: str | None = None) -> tuple[UNet, GaussianDiffusion, dict]:
    """Load a checkpoint; return ``(model in eval mode, its GaussianDiffusion, the checkpoint dict)``.

    ``name_or_path``: a file name in the repository's ``checkpoints/`` folder or any path.
    ``use_ema``: use the EMA weights when the file has them (the better model).
    """
    if not isinstance(name_or_path, (str, Path)):
        raise InputTypeError(f"name_or_path must be a file name or path, got {type(name_or_path).__name__}")
    path = Path(name_or_path)
    if not path.is_file() and (CHECKPOINT_DIR / path).is_file():
        path = CHECKPOINT_DIR / path
    ckpt = load_checkpoint(path)
    model = make_model(ckpt["config"])
    weights = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    load_weights(model, weights, path)
    model.eval()
    return model, make_diffusion(ckpt["config"], model_var_type), ckpt

