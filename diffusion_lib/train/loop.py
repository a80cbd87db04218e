"""A small, generic training loop shared by the book's chapters.

``train`` runs ``steps`` optimiser steps of Adam on ``loss_fn(model, batch, generator)``, where each
batch is drawn with replacement from a data tensor (or produced by a sampler function) using a
seeded ``torch.Generator``. It returns the loss history. It knows nothing about diffusion: the
Swiss-roll MLPs of Part II and the U-Net of the image chapters use it alike.

Determinism and time budgets
----------------------------
A chapter must give the same numbers on every run, but seconds vary from machine to machine.
So the *number of steps* decides how long a model trains; a chapter picks a step count that fits
its time budget on the book's reference machine (``estimate_steps`` measures the speed). The
optional ``time_budget_s`` is only a safety stop: if a slow machine reaches it first, training
stops early, ``TrainResult.stopped_early`` is set, and a warning says that results will differ
from the book's.

The learning rate follows a linear warm-up and then a cosine decay to ``lr * final_lr_fraction``
(``lr_schedule="cosine"``), or stays constant after the warm-up (``"constant"``).
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["TrainResult", "train", "estimate_steps", "lr_at_step", "sample_batch"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]
Sampler = Callable[[int, torch.Generator], torch.Tensor]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        losses: the loss of every step, in order (a list of floats).
        steps: the number of optimiser steps taken.
        seconds: training wall-clock time, excluding the time spent in ``callback``.
        stopped_early: True if ``time_budget_s`` ran out before ``steps`` were done.
        ema_model: the exponential moving average of the weights (None unless ``ema_decay``).
        lrs: the learning rate used at every step.
    """

    losses: list[float]
    steps: int
    seconds: float
    stopped_early: bool = False
    ema_model: nn.Module | None = None
    lrs: list[float] = field(default_factory=list)
    #: everything needed to continue this run bit-identically with ``train(..., resume=state)``:
    #: "step", "steps", "optimizer" and "generator" states, "ema" weights (or None), "losses", "lrs"
    #: (the model's own weights are not included; save ``model.state_dict()`` next to it).
    state: dict | None = None

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds if self.seconds > 0 else float("nan")

    def smoothed_losses(self, window: int = 100) -> torch.Tensor:
        """Running mean of the losses over ``window`` steps (shorter at the start)."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        x = torch.tensor(self.losses, dtype=torch.float64)
        if x.numel() == 0:
            return x
        c = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(x, 0)])
        idx = torch.arange(1, x.numel() + 1)
        lo = (idx - window).clamp(min=0)
        return (c[idx] - c[lo]) / (idx - lo)


def lr_at_step(step: int, steps: int, lr: float, warmup_steps: int, schedule: str,
               final_lr_fraction: float = 0.0) -> float:
    """Learning rate at optimiser step ``step`` (0-based) of ``steps``.

    Warm-up: ``lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``. Then ``"constant"``
    keeps ``lr``; ``"cosine"`` decays as ``lr_min + (lr - lr_min) (1 + cos(pi u)) / 2`` with
    ``u = (step - warmup) / (steps - warmup)`` going from 0 to 1 and ``lr_min = final_lr_fraction * lr``.
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {schedule!r}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    u = (step - warmup_steps) / max(1, steps - warmup_steps)
    lr_min = final_lr_fraction * lr
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, u)))


def sample_batch(data: torch.Tensor | Sampler, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A minibatch: ``batch_size`` rows of ``data`` drawn with replacement, or ``data(batch_size, generator)``."""
    if isinstance(data, torch.Tensor):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
        return data[idx]
    return data(batch_size, generator)


def _check_args(model, loss_fn, data, steps, batch_size, lr, warmup_steps, ema_decay, time_budget_s):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be a function loss_fn(model, batch, generator) -> scalar tensor")
    if isinstance(data, torch.Tensor):
        if data.ndim < 1 or data.shape[0] < 1:
            raise ValueError(f"data must be a tensor with at least one example along dim 0, got shape {tuple(data.shape)}")
    elif not callable(data):
        raise TypeError(
            "data must be a tensor of training examples (N, ...) or a sampler function "
            f"data(batch_size, generator) -> tensor, got {type(data).__name__}"
        )
    for name, v in [("steps", steps), ("batch_size", batch_size)]:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if ema_decay is not None and not (0.0 < ema_decay < 1.0):
        raise ValueError(f"ema_decay must lie in (0, 1) (e.g. 0.99), or be None; got {ema_decay!r}")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time_budget_s must be a positive number of seconds or None, got {time_budget_s!r}")


def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor | Sampler,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    *,
    seed: int = 0,
    warmup_steps: int = 0,
    lr_schedule: str = "cosine",
    final_lr_fraction: float = 0.0,
    weight_decay: float = 0.0,
    grad_clip: float | None = None,
    ema_decay: float | None = None,
    ema_warmup: bool = False,
    time_budget_s: float | None = None,
    progress: bool = True,
    desc: str = "training",
    callback: Callable[[int, float, nn.Module], None] | None = None,
    resume: dict | None = None,
    stop_at: int | None = None,
) -> TrainResult:
    """Train ``model`` for ``steps`` Adam steps on ``loss_fn``; return the loss history.

    Each step draws ``batch = sample_batch(data, batch_size, g)`` and minimises
    ``loss_fn(model, batch, g)`` (a scalar), where ``g`` is one ``torch.Generator`` seeded with
    ``seed`` that also feeds the loss's own randomness (timesteps, noise). With the model's
    initial weights fixed (seed before building it), a run is exactly reproducible.

    Args:
        model: the network (trained in place; left in eval mode at the end).
        loss_fn: ``loss_fn(model, batch, generator) -> scalar tensor``.
        data: a tensor of examples ``(N, ...)`` or a sampler ``data(batch_size, generator)``.
        steps: number of optimiser steps (this, not the clock, decides the result).
        batch_size: examples per step.
        lr: peak learning rate of Adam(W).
        seed: seed of the generator for batches and noise.
        warmup_steps: linear warm-up length.
        lr_schedule: ``"cosine"`` (decay to ``final_lr_fraction * lr``) or ``"constant"``.
        weight_decay: AdamW weight decay (0 gives plain Adam).
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        ema_decay: keep an exponential moving average of the weights with this decay.
        ema_warmup: use the decay ``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` steps, so
            that early in training the average forgets the random initial weights quickly
            (with a fixed decay 0.999 they still weigh 0.999**n, e.g. 13% after 2,000 steps).
        time_budget_s: safety stop in seconds (see the module docstring); None for no limit.
        progress: show a ``tqdm.auto`` progress bar.
        desc: label of the progress bar.
        callback: ``callback(step, seconds, model)`` after every step (``step`` counts from 1);
            its own run time is not counted in ``seconds`` or against the budget.
        resume: a ``TrainResult.state`` (e.g. read back from a checkpoint) to continue from; load
            the model weights saved with it first. The run goes on from step ``resume["step"]``
            with the same optimiser, random-number and EMA state, so it is bit-identical to an
            uninterrupted run (``steps`` and the other arguments must be the same).
        stop_at: stop after this many steps in total (< ``steps``), e.g. to save a checkpoint;
            the learning-rate schedule still spans ``steps``.
    """
    _check_args(model, loss_fn, data, steps, batch_size, lr, warmup_steps, ema_decay, time_budget_s)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(int(seed))
    ema_model = None
    if ema_decay is not None:
        ema_model = copy.deepcopy(model).eval()
        for p in ema_model.parameters():
            p.requires_grad_(False)
    losses: list[float] = []
    lrs: list[float] = []
    start_step = 0
    if resume is not None:
        start_step = _restore(resume, steps, opt, g, ema_model)
        losses, lrs = [float(v) for v in resume["losses"]], [float(v) for v in resume["lrs"]]
    end_step = steps if stop_at is None else int(stop_at)
    if not start_step <= end_step <= steps:
        raise ValueError(f"stop_at must lie between the resumed step {start_step} and steps={steps}, got {stop_at!r}")
    stopped_early = False
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start_step, desc=desc, leave=True)
    model.train()
    paused = 0.0
    start = time.perf_counter()
    try:
        for step in range(start_step, end_step):
            lr_now = lr_at_step(step, steps, lr, warmup_steps, lr_schedule, final_lr_fraction)
            for group in opt.param_groups:
                group["lr"] = lr_now
            batch = sample_batch(data, batch_size, g)
            loss = loss_fn(model, batch, g)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TypeError(
                    "loss_fn must return a scalar tensor (take .mean() of per-example losses); "
                    f"got {type(loss).__name__}" + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else "")
                )
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"the loss became {value} at step {step + 1}: lower the learning rate, add "
                    "grad_clip, check that the data lie in the range the model expects (e.g. [-1, 1]), "
                    "or check the loss for a log of zero / division by zero"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            if ema_model is not None:
                decay = ema_decay
                if ema_warmup:
                    decay = min(ema_decay, (1.0 + step) / (10.0 + step))
                with torch.no_grad():
                    for pe, pm in zip(ema_model.parameters(), model.parameters()):
                        pe.lerp_(pm.detach(), 1.0 - decay)
                    for be, bm in zip(ema_model.buffers(), model.buffers()):
                        be.copy_(bm)
            losses.append(value)
            lrs.append(lr_now)
            if bar is not None:
                bar.update(1)
                if (step + 1) % 50 == 0 or step + 1 == steps:
                    bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
            elapsed = time.perf_counter() - start - paused
            if callback is not None:
                t_cb = time.perf_counter()
                model.eval()
                callback(step + 1, elapsed, model)
                model.train()
                paused += time.perf_counter() - t_cb
            if time_budget_s is not None and elapsed > time_budget_s and step + 1 < end_step:
                stopped_early = True
                warnings.warn(
                    f"{desc}: the time budget of {time_budget_s:g} s ran out after {step + 1} of {steps} "
                    "steps; this machine is slower than the book's, so the numbers will differ",
                    RuntimeWarning,
                    stacklevel=2,
                )
                break
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    seconds = time.perf_counter() - start - paused
    state = {
        "step": len(losses), "steps": steps, "optimizer": opt.state_dict(), "generator": g.get_state(),
        "ema": None if ema_model is None else ema_model.state_dict(), "losses": list(losses), "lrs": list(lrs),
    }
    return TrainResult(losses=losses, steps=len(losses), seconds=seconds, stopped_early=stopped_early,
                       ema_model=ema_model, lrs=lrs, state=state)


def _restore(state: dict, steps: int, opt: torch.optim.Optimizer, g: torch.Generator,
             ema_model: nn.Module | None) -> int:
    """Load a ``TrainResult.state`` into the optimiser, generator and EMA copy; return its step."""
    missing = {"step", "steps", "optimizer", "generator", "ema", "losses", "lrs"} - set(state)
    if missing:
        raise ValueError(f"resume must be a TrainResult.state (or a checkpoint's 'train_state'); it lacks {sorted(missing)}")
    if int(state["steps"]) != steps:
        raise ValueError(
            f"the run being resumed was planned for steps={state['steps']} (its learning-rate schedule "
            f"depends on it); pass the same steps, got {steps}"
        )
    if (state["ema"] is None) != (ema_model is None):
        raise ValueError("resume with the same ema_decay setting as the original run (EMA on in one, off in the other)")
    opt.load_state_dict(state["optimizer"])
    g.set_state(state["generator"])
    if ema_model is not None:
        ema_model.load_state_dict(state["ema"])
    return int(state["step"])


def estimate_steps(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor | Sampler,
    seconds: float,
    batch_size: int = 256,
    probe_steps: int = 30,
    safety: float = 1.0,
) -> tuple[int, float]:
    """How many steps of :func:`train` fit in ``seconds`` on this machine: ``(steps, steps_per_second)``.

    Times ``probe_steps`` steps on a deep copy of the model (the model itself is not changed) and
    returns ``floor(safety * seconds * rate)``. Use it to *choose* a fixed step count, then write
    that number into the chapter so every run trains the same amount.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if not 0 < safety <= 1:
        raise ValueError(f"safety must lie in (0, 1], got {safety!r}")
    probe = copy.deepcopy(model)
    train(probe, loss_fn, data, steps=3, batch_size=batch_size, progress=False)  # warm-up
    result = train(probe, loss_fn, data, steps=probe_steps, batch_size=batch_size, progress=False)
    rate = result.steps_per_second
    return max(1, int(safety * seconds * rate)), rate
