r"""The configuration of an image DDPM run: one plain dict, validated in full when it is made.

A run is described by a dict of plain values (ints, floats, strings, booleans, None, lists and
dicts; see :data:`DEFAULT_CONFIG`): the data, the noise schedule, the loss, the U-Net and the
optimiser settings. :func:`make_config` applies overrides to the defaults and checks *every* key,
so a typo (``schedule="linearr"``), a wrong type (``T="1000"``) or an impossible value
(``steps=-5``) is refused here, with a message, rather than deep inside training or, worse, in a
checkpoint that cannot be read back. NumPy scalars are turned into Python numbers, so the config
can always be written with ``torch.save`` and read with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import copy
import inspect
import numbers
from typing import Any

from diffusion_lib._checks import check_choice, check_int, check_real
from diffusion_lib.core.diffusion import MODEL_MEAN_TYPES
from diffusion_lib.core.schedules import SCHEDULE_NAMES, NoiseSchedule
from diffusion_lib.core.timesteps import TRAINING_T_SAMPLINGS
from diffusion_lib.data.augment import AUGMENTATIONS
from diffusion_lib.errors import InputTypeError, InputValueError
from diffusion_lib.models.unet import UNet

__all__ = ["DEFAULT_CONFIG", "DATA_SETS", "LOSSES", "make_config"]

#: What a run may train on: the shipped 8x8 digits, or an image set a reader downloads
#: (``scripts/train.py --dataset``); the chapters' loaders read the name from the checkpoint.
DATA_SETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10")

#: ``--loss`` names of ``scripts/train_digits.py`` -> (loss_type, model_var_type) of GaussianDiffusion.
LOSSES: dict[str, tuple[str, str]] = {
    "simple": ("l2", "fixed_large"),  # L_simple of DDPM, sigma_t^2 = beta_t
    "vlb": ("kl", "learned_range"),  # the variational bound alone, learned variances
    "hybrid": ("hybrid", "learned_range"),  # L_simple + 0.001 L_vlb (Nichol & Dhariwal, 2021)
}

DEFAULT_CONFIG: dict[str, Any] = {
    "data": "digits",  # the train split of diffusion_lib.data.load_digits_split, or one of DATA_SETS
    "T": 1000,
    "schedule": "linear",
    "loss": "hybrid",
    "model_mean_type": "eps",
    "steps": 4000,
    "batch_size": 128,
    "lr": 2e-3,
    "warmup_steps": 200,
    "weight_decay": 0.0,  # AdamW's decoupled weight decay
    "grad_clip": 1.0,
    "ema_decay": 0.999,
    "ema_warmup": True,  # decay min(0.999, (1 + n) / (10 + n)) after n steps
    "t_sampling": "uniform",  # or "inverse_mix", "loss_aware": see diffusion_lib.core.timesteps
    "augment": "none",  # or "shift": see diffusion_lib.train.objectives.AUGMENTATIONS
    "seed": 0,
    "conditional": False,
    "p_uncond": 0.1,  # label dropout (classifier-free guidance) when conditional
    "model": {"dim": 32, "dim_mults": [1, 2], "block_type": "resnet", "attention": "linear",
              "mid_attention": "full", "groups": 8},
}

#: Keys added after the first version-2 checkpoints were written, with the value those runs used:
#: a stored config without them is read as having that value.
_ADDED_KEYS: dict[str, Any] = {"weight_decay": 0.0, "augment": "none"}

#: U-Net arguments a config may set; the others follow from the run (see ``make_model``).
_SET_BY_RUN = {"self", "num_timesteps", "num_classes", "learned_variance"}
MODEL_KEYS: tuple[str, ...] = tuple(p for p in inspect.signature(UNet.__init__).parameters if p not in _SET_BY_RUN)


def _plain(value: Any, where: str) -> Any:
    """``value`` with NumPy scalars and str subclasses turned into Python ones; refuse anything else.

    What remains is built from None / bool / int / float / str / list / dict only, which
    ``torch.load(..., weights_only=True)`` reads back.
    """
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InputTypeError(f"{where}: dictionary keys must be strings, got {k!r}; use str keys")
            out[str(k)] = _plain(v, f"{where}[{k!r}]")
        return out
    raise InputTypeError(
        f"{where} is a {type(value).__name__}; a checkpoint may hold only numbers, strings, booleans, "
        "None, lists and dicts (so that torch.load(..., weights_only=True) can read it): store a plain value"
    )


def _check_bool(value: Any, name: str) -> bool:
    if type(value).__name__ == "bool_":  # numpy.bool_
        value = bool(value)
    if not isinstance(value, bool):
        raise InputTypeError(f"config[{name!r}] must be True or False, got {type(value).__name__} {value!r}")
    return value


def _check_model(model: Any) -> dict:
    if not isinstance(model, dict):
        raise InputTypeError(f"config['model'] must be a dict of U-Net arguments, got {type(model).__name__}")
    unknown = sorted(set(model) - set(MODEL_KEYS))
    if unknown:
        raise InputValueError(
            f"unknown U-Net argument(s) {unknown} in config['model']; known ones: {list(MODEL_KEYS)} "
            "(num_timesteps, num_classes and learned_variance follow from T, conditional and loss)"
        )
    model = dict(model)
    if "dim" in model:
        model["dim"] = check_int(model["dim"], "config['model']['dim']", minimum=1)
    if "dim_mults" in model:
        mults = model["dim_mults"]
        if not isinstance(mults, (list, tuple)) or not mults:
            raise InputTypeError(f"config['model']['dim_mults'] must be a non-empty list of ints, e.g. [1, 2]; got {mults!r}")
        model["dim_mults"] = [check_int(m, "config['model']['dim_mults'] entry", minimum=1) for m in mults]
    if "groups" in model:
        model["groups"] = check_int(model["groups"], "config['model']['groups']", minimum=1)
    return model


def validate_config(config: Any, where: str = "config") -> dict:
    """Check every key of a run's config; return a normalised copy (Python numbers, lists).

    Used by :func:`make_config` and by the checkpoint loader (a file whose config fails here was
    written for another version of the library or another model).
    """
    if not isinstance(config, dict):
        raise InputTypeError(f"{where} must be a dict (see DEFAULT_CONFIG), got {type(config).__name__}")
    config = {**{k: v for k, v in _ADDED_KEYS.items() if k not in config}, **config}
    missing = sorted(set(DEFAULT_CONFIG) - set(config))
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise InputValueError(f"unknown config keys {unknown}; known keys: {sorted(DEFAULT_CONFIG)}")
    if missing:
        raise InputValueError(f"{where} lacks the keys {missing}; build it with make_config(...)")
    c = _plain({k: config[k] for k in DEFAULT_CONFIG}, where)
    check_choice(c["data"], DATA_SETS, "config['data']")
    c["T"] = check_int(c["T"], "config['T']", minimum=2)
    check_choice(c["schedule"], SCHEDULE_NAMES, "config['schedule']")
    try:  # the schedule must exist for this T (e.g. the linear one needs T >= 21)
        NoiseSchedule.from_name(c["schedule"], c["T"])
    except ValueError as err:
        raise InputValueError(f"config['schedule'] = {c['schedule']!r} does not work with T = {c['T']}: {err}") from None
    check_choice(c["loss"], tuple(LOSSES), "config['loss']")
    check_choice(c["model_mean_type"], MODEL_MEAN_TYPES, "config['model_mean_type']")
    check_choice(c["t_sampling"], TRAINING_T_SAMPLINGS, "config['t_sampling']")
    c["steps"] = check_int(c["steps"], "config['steps']", minimum=1)
    c["batch_size"] = check_int(c["batch_size"], "config['batch_size']", minimum=1)
    c["warmup_steps"] = check_int(c["warmup_steps"], "config['warmup_steps']", minimum=0)
    c["seed"] = check_int(c["seed"], "config['seed']", minimum=0)
    c["lr"] = check_real(c["lr"], "config['lr']", minimum=0.0, strict=True)
    c["weight_decay"] = check_real(c["weight_decay"], "config['weight_decay']", minimum=0.0)
    check_choice(c["augment"], AUGMENTATIONS, "config['augment']")
    if c["grad_clip"] is not None:
        c["grad_clip"] = check_real(c["grad_clip"], "config['grad_clip'] (or None)", minimum=0.0, strict=True)
    if c["ema_decay"] is not None:
        c["ema_decay"] = check_real(c["ema_decay"], "config['ema_decay'] (or None)", minimum=0.0, strict=True)
        if c["ema_decay"] >= 1.0:
            raise InputValueError(f"config['ema_decay'] must lie in (0, 1), e.g. 0.999, or be None; got {c['ema_decay']}")
    c["p_uncond"] = check_real(c["p_uncond"], "config['p_uncond']", minimum=0.0)
    if c["p_uncond"] >= 1.0:
        raise InputValueError(f"config['p_uncond'] must lie in [0, 1) (1 would drop every label), got {c['p_uncond']}")
    c["ema_warmup"] = _check_bool(c["ema_warmup"], "ema_warmup")
    c["conditional"] = _check_bool(c["conditional"], "conditional")
    c["model"] = _check_model(c["model"])
    return c


def make_config(**overrides: Any) -> dict:
    """:data:`DEFAULT_CONFIG` with ``overrides`` applied (``model=`` entries merge into the model dict).

    Every key is validated up front (names, types, ranges, option names); NumPy scalars become
    Python numbers. Raises :class:`~diffusion_lib.errors.InputValueError` /
    :class:`~diffusion_lib.errors.InputTypeError` naming the key.
    """
    config = copy.deepcopy(DEFAULT_CONFIG)
    unknown = sorted(set(overrides) - set(config))
    if unknown:
        raise InputValueError(f"unknown config keys {unknown}; known keys: {sorted(config)}")
    model = overrides.pop("model", None)
    config.update(overrides)
    if model is not None:
        if not isinstance(model, dict):
            raise InputTypeError(f"model= must be a dict of U-Net arguments, got {type(model).__name__}")
        config["model"] = {**config["model"], **model}
    return validate_config(config)
