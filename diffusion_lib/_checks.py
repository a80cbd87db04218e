"""Input validation shared by the library.

Every check raises ``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (right kind,
wrong value or shape) with a message that says what was expected, what arrived, and how to fix
it. The messages are written for students: they name the argument and the convention involved.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from diffusion_lib.errors import InputTypeError, InputValueError, NonFiniteError

__all__ = [
    "check_tensor",
    "check_floating",
    "check_same_shape",
    "check_broadcastable",
    "check_choice",
    "check_int",
    "check_timesteps",
    "check_same_device",
    "check_finite",
    "check_real",
    "check_input_dtype",
]


def check_tensor(x: Any, name: str) -> torch.Tensor:
    """Return ``x`` if it is a ``torch.Tensor``; raise ``TypeError`` otherwise."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(
            f"{name} must be a torch.Tensor, but got {type(x).__name__}; "
            f"wrap it with torch.as_tensor(...) first"
        )
    return x


def check_floating(x: Any, name: str) -> torch.Tensor:
    """Return ``x`` if it is a floating-point tensor; raise ``TypeError`` otherwise."""
    check_tensor(x, name)
    if not torch.is_floating_point(x):
        raise InputTypeError(
            f"{name} must be a floating-point tensor (e.g. torch.float32), but got dtype "
            f"{x.dtype}; convert it with {name}.float()"
        )
    return x


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have exactly the same shape (no broadcasting)."""
    if tuple(a.shape) != tuple(b.shape):
        raise InputValueError(
            f"{name_a} and {name_b} must have the same shape, but {name_a} has shape "
            f"{tuple(a.shape)} and {name_b} has shape {tuple(b.shape)}"
        )


def check_broadcastable(*named: tuple[str, torch.Tensor]) -> torch.Size:
    """Return the broadcast shape of the given ``(name, tensor)`` pairs, or raise ``ValueError``."""
    # plain-Python broadcasting (torch.broadcast_shapes is slow: it routes through torch._refs)
    shapes = [tuple(t.shape) for _, t in named]
    ndim = max(len(shape) for shape in shapes)
    result = [1] * ndim
    for shape in shapes:
        for i, size in enumerate(shape, start=ndim - len(shape)):
            if size == 1 or size == result[i]:
                continue
            if result[i] != 1:
                described = ", ".join(f"{n} {tuple(t.shape)}" for n, t in named)
                raise InputValueError(
                    f"the shapes of {described} do not broadcast against each other; "
                    f"they must be equal or 1 in every dimension where they differ"
                )
            result[i] = size
    return torch.Size(result)


def check_choice(value: Any, allowed: Sequence[str], name: str) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise raise ``ValueError`` listing them."""
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise InputValueError(f"unknown {name} {value!r}; allowed values are: {options}")
    return value


def check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be an int, but got {type(value).__name__} {value!r}")
    value = int(value)  # also accepts NumPy integers
    if minimum is not None and value < minimum:
        raise InputValueError(f"{name} must be >= {minimum}, but got {value}")
    return value


def check_same_device(x: torch.Tensor, device: torch.device, name: str, fix: str) -> None:
    """Raise ``ValueError`` if tensor ``x`` is not on ``device``; ``fix`` says how to move it."""
    if x.device != torch.device(device) and not (
        x.device.type == torch.device(device).type and torch.device(device).index is None
    ):
        raise InputValueError(f"{name} is on device {x.device} but must be on {device}; {fix}")


def check_timesteps(
    t: Any,
    T: int,
    batch: int | None = None,
    allow_zero: bool = False,
    device: torch.device | str | None = None,
    name: str = "t",
) -> torch.Tensor:
    """Validate a batch of timesteps and return it as a ``LongTensor`` of shape ``(batch,)``.

    Accepted forms of ``t``:
      * a Python ``int`` (or 0-dim integer tensor): broadcast to every example of the batch
        (needs ``batch``);
      * a 1-D integer tensor of shape ``(batch,)``: one timestep per example.

    Values must lie in ``1..T`` (time counts from 1; ``t = 0`` is the data itself), or in
    ``0..T`` when ``allow_zero`` is true. With ``device`` given, a tensor ``t`` must already
    live there (an ``int`` is created there).
    """
    lo = 0 if allow_zero else 1
    if isinstance(t, bool):
        raise InputTypeError(f"{name} must be an int or an integer tensor, but got a bool")
    if isinstance(t, numbers.Integral):
        t = int(t)
        if not lo <= t <= T:  # checked here too, so that an empty batch cannot skip it
            raise InputValueError(
                f"{name} must lie in {lo}..{T} ({'t = 0 is allowed here and means the data x_0' if allow_zero else 't counts from 1; t=0 is the data itself'}), "
                f"but got values from {t} to {t}"
            )
        if batch is None:
            t_tensor = torch.tensor([t], dtype=torch.long, device=device)
        else:
            t_tensor = torch.full((batch,), t, dtype=torch.long, device=device)
    elif isinstance(t, torch.Tensor):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise InputTypeError(
                f"{name} must hold integer timesteps (torch.long), but got dtype {t.dtype}; "
                f"timesteps are counts 1..{T}, so build them with torch.randint or "
                f"torch.full(..., dtype=torch.long), or convert with {name}.long()"
            )
        if t.ndim == 0:
            t_tensor = t.reshape(1).long()
            if batch is not None:
                if not lo <= int(t) <= T:  # before the expand: an empty batch cannot skip it
                    return check_timesteps(int(t), T, batch, allow_zero, device, name)
                t_tensor = t_tensor.expand(batch)
        elif t.ndim == 1:
            t_tensor = t.long()
        else:
            raise InputValueError(
                f"{name} must be an int or a 1-D tensor with one timestep per example, "
                f"but got a tensor of shape {tuple(t.shape)}"
            )
        if batch is not None and t_tensor.shape[0] != batch:
            raise InputValueError(
                f"{name} has {t_tensor.shape[0]} entries but the batch has {batch} examples; "
                f"pass one timestep per example (shape ({batch},)) or a single int"
            )
        if device is not None:
            check_same_device(
                t_tensor, torch.device(device), name, f"move it with {name}.to({str(device)!r})"
            )
    elif isinstance(t, Iterable):
        raise InputTypeError(
            f"{name} must be an int or an integer torch.Tensor, but got {type(t).__name__}; "
            f"convert it with torch.tensor(..., dtype=torch.long)"
        )
    else:
        raise InputTypeError(
            f"{name} must be an int or an integer torch.Tensor, but got {type(t).__name__}"
        )
    if t_tensor.numel() > 0:
        t_min, t_max = int(t_tensor.min()), int(t_tensor.max())
        if t_min < lo or t_max > T:
            note = (
                "t = 0 is allowed here and means the data x_0"
                if allow_zero
                else "t counts from 1; t=0 is the data itself"
            )
            raise InputValueError(
                f"{name} must lie in {lo}..{T} ({note}), but got values from {t_min} to {t_max}"
            )
    return t_tensor


_FINITE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("diffusion_lib_finite_checks", default=True)


@contextlib.contextmanager
def finite_checks_guarded_elsewhere() -> Iterator[None]:
    """Skip :func:`check_finite` inside the block, where a caller guards finiteness itself.

    The training loop runs each step's ``loss_fn`` in this block: it checks the loss, every
    gradient and every weight at each step and stops with the step and advice, so the per-call
    reductions over inputs would only repeat that check (and cost a device sync each).
    """
    token = _FINITE_CHECKS.set(False)
    try:
        yield
    finally:
        _FINITE_CHECKS.reset(token)


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Return ``x`` if every entry is finite; raise ``NonFiniteError`` naming ``name`` otherwise.

    One reduction per call: use it once at a public boundary, not inside a loop. Inside
    :func:`finite_checks_guarded_elsewhere` (the training loop's steps) it returns ``x`` unchecked.
    """
    if not _FINITE_CHECKS.get():
        return x
    if x.numel() and not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(
            f"{name} contains {n_bad} NaN or infinite value(s) out of {x.numel()}; every value must "
            f"be finite, so find where the NaN or inf first appears (torch.isfinite({name}))"
        )
    return x


def check_real(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` in ``[minimum, maximum]`` (open at ``minimum`` with ``strict``).

    Accepts Python and NumPy numbers and 0-dim real tensors; refuses bools, NaN and infinity.
    """
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_complex() and value.dtype != torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number, but got {type(value).__name__} {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise InputValueError(f"{name} must be a finite number, but got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = "positive (> 0)" if strict and minimum == 0 else f"{'>' if strict else '>='} {minimum}"
        raise InputValueError(f"{name} must be {bound}, but got {value}")
    if maximum is not None and value > maximum:
        raise InputValueError(f"{name} must be <= {maximum}, but got {value}")
    return value


def check_input_dtype(x: torch.Tensor, dtype: torch.dtype, name: str, owner: str = "the model") -> None:
    """Raise ``InputTypeError`` unless floating tensor ``x`` has ``dtype``, the dtype of ``owner``'s parameters.

    The message names both fixes: convert the input (``x.float()`` / ``x.double()``) or the
    model (``model.double()`` / ``model.float()``).
    """
    check_floating(x, name)
    if x.dtype != dtype:
        to_x = {torch.float32: "float()", torch.float64: "double()"}.get(dtype, f"to({dtype})")
        to_model = {torch.float32: "float()", torch.float64: "double()"}.get(x.dtype, f"to({x.dtype})")
        raise InputTypeError(
            f"{name} has dtype {x.dtype} but {owner} has dtype {dtype}; convert the input with "
            f"{name}.{to_x} or the model with model.{to_model}"
        )
