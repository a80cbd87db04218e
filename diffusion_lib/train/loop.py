r"""The one training loop of the book: every model (Swiss-roll MLPs, the 2015 model, the VAE, the
hierarchical VAE's encoder, the digit U-Nets and the digit classifier) trains with :func:`train`.

``train`` runs ``steps`` AdamW steps on ``loss_fn(model, batch, generator)``, where each batch is
drawn with replacement from a data tensor (or produced by a sampler function) using one seeded
``torch.Generator``. It is built from torch's own pieces: ``torch.optim.AdamW``,
``torch.optim.lr_scheduler.LambdaLR`` for the learning-rate schedule and
``torch.optim.swa_utils.AveragedModel`` for the exponential moving average of the weights. Around
them it adds what the book needs: a guard that stops at the first non-finite loss, gradient or
weight (:class:`~diffusion_lib.errors.NonFiniteError` naming the step and the quantity), a
bit-identical resume, a safety time budget and a ``tqdm.auto`` progress bar.

Determinism and time budgets
----------------------------
A chapter must give the same numbers on every run, but seconds vary from machine to machine.
So the *number of steps* decides how long a model trains; a chapter picks a step count that fits
its time budget on the book's reference machine (``estimate_steps`` measures the speed). The
optional ``time_budget_s`` is only a safety stop: if a slow machine reaches it first, training
stops early, ``TrainResult.stopped_early`` is set, and a warning says that results will differ
from the book's.

Learning rate: a linear warm-up over ``warmup_steps`` steps, ``lr (s + 1) / warmup_steps`` at
step ``s``, then ``"cosine"``: ``lr_min + (lr - lr_min) (1 + cos(pi u)) / 2`` with ``u`` going
from 0 to 1 over the remaining steps and ``lr_min = final_lr_fraction * lr``; or ``"constant"``.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel

from diffusion_lib._checks import check_choice, check_finite, check_int, check_real, finite_checks_guarded_elsewhere
from diffusion_lib.errors import InputTypeError, InputValueError, NonFiniteError

__all__ = ["TrainResult", "train", "estimate_steps"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]
Sampler = Callable[[int, torch.Generator], torch.Tensor]
LR_SCHEDULES: tuple[str, ...] = ("cosine", "constant")
_STATE_KEYS = ("step", "steps", "optimizer", "generator", "ema", "losses", "lrs")


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        losses: the loss of every step, in order (a list of floats).
        steps: the number of optimiser steps taken.
        seconds: training wall-clock time, excluding the time spent in ``callback``.
        stopped_early: True if ``time_budget_s`` ran out before ``steps`` were done.
        ema_model: the exponential moving average of the weights, a model of the same class
            (None unless ``ema_decay``).
        lrs: the learning rate used at every step.
        state: everything needed to continue this run bit-identically with
            ``train(..., resume=state)``: "step", "steps", "optimizer" and "generator" states,
            "ema" weights (or None), "losses", "lrs", and "loss_fn" when ``loss_fn`` has a
            ``state_dict()`` (the model's own weights are not included; save ``model.state_dict()``
            next to it).
    """

    losses: list[float]
    steps: int
    seconds: float
    stopped_early: bool = False
    ema_model: nn.Module | None = None
    lrs: list[float] = field(default_factory=list)
    state: dict | None = None

    @property
    def steps_per_second(self) -> float:
        """Optimiser steps per second of training time (NaN before any time has passed)."""
        return self.steps / self.seconds if self.seconds > 0 else float("nan")

    def smoothed_losses(self, window: int = 100) -> torch.Tensor:
        """Running mean of the losses over ``window`` steps (shorter at the start)."""
        window = check_int(window, "window", minimum=1)
        x = torch.tensor(self.losses, dtype=torch.float64)
        if x.numel() == 0:
            return x
        c = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(x, 0)])
        idx = torch.arange(1, x.numel() + 1)
        lo = (idx - window).clamp(min=0)
        return (c[idx] - c[lo]) / (idx - lo)


def _lr_factor(step: int, steps: int, warmup_steps: int, schedule: str, final_lr_fraction: float) -> float:
    """The learning rate at optimiser step ``step`` (0-based) as a fraction of the peak ``lr``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    u = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    return final_lr_fraction + (1.0 - final_lr_fraction) * 0.5 * (1.0 + math.cos(math.pi * u))


def _ema_update(decay: float, warmup: bool) -> Callable[[list, list, torch.Tensor], None]:
    """The ``multi_avg_fn`` of ``AveragedModel``: ``ema <- d ema + (1 - d) theta`` for every weight.

    ``d = decay``, or with ``warmup`` ``min(decay, (1 + n) / (10 + n))`` after ``n`` optimiser
    steps. The average starts from the initial weights (``n_averaged`` is 1 before step 1).
    """

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = int(n_averaged) - 1  # optimiser steps taken before this one
        d = min(decay, (1.0 + n) / (10.0 + n)) if warmup else decay
        for pe, pm in zip(ema_params, params):
            pe.lerp_(pm, 1.0 - d)

    return update


def _sample_batch(data: torch.Tensor | Sampler, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` rows of ``data`` drawn with replacement, or ``data(batch_size, generator)``."""
    if isinstance(data, torch.Tensor):
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=generator)
        return data[idx]
    return data(batch_size, generator)


def _advice(lr: float, grad_clip: float | None) -> str:
    clip = "clip the gradients (grad_clip=1.0)" if grad_clip is None else f"clip the gradients harder (grad_clip < {grad_clip:g})"
    return (f"lower the learning rate (lr={lr:g}), {clip}, or check that the data are finite and lie in the "
            "range the model expects (e.g. [-1, 1]) and that the loss has no log of zero / division by zero")


def _first_non_finite(named: list[tuple[str, torch.Tensor]]) -> str | None:
    """Name of the first tensor with a NaN or inf entry (one device sync when all are finite).

    The fast test sums each tensor and the sums: a NaN or inf anywhere makes the total non-finite
    (inf - inf is NaN), and a finite total means every entry is finite unless the sum overflows,
    which needs entries near the float limit. Only then are the tensors looked at one by one.
    """
    if not named:
        return None
    total = torch.stack([t.detach().sum() for _, t in named]).sum()  # stack promotes mixed dtypes
    if bool(torch.isfinite(total)):
        return None
    flags = torch.stack([torch.isfinite(t).all() for _, t in named])
    if bool(flags.all()):
        return None
    return named[int((~flags).nonzero()[0])][0]


def _check_args(model, loss_fn, data, steps, batch_size, lr, seed, warmup_steps, lr_schedule, final_lr_fraction,
                weight_decay, grad_clip, ema_decay, ema_warmup, time_budget_s, desc, callback, resume, stop_at):
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise InputTypeError("loss_fn must be a function loss_fn(model, batch, generator) -> scalar tensor")
    if isinstance(data, torch.Tensor):
        if data.ndim < 1 or data.shape[0] < 1:
            raise InputValueError(f"data must be a tensor with at least one example along dim 0, got shape {tuple(data.shape)}")
        if data.is_floating_point():
            check_finite(data, "data")
    elif not callable(data):
        raise InputTypeError(
            "data must be a tensor of training examples (N, ...) or a sampler function "
            f"data(batch_size, generator) -> tensor, got {type(data).__name__}"
        )
    out = dict(
        steps=check_int(steps, "steps", minimum=1),
        batch_size=check_int(batch_size, "batch_size", minimum=1),
        lr=check_real(lr, "lr", minimum=0.0, maximum=1e6, strict=True),
        seed=check_int(seed, "seed", minimum=0),
        warmup_steps=check_int(warmup_steps, "warmup_steps", minimum=0),
        final_lr_fraction=check_real(final_lr_fraction, "final_lr_fraction", minimum=0.0, maximum=1.0),
        weight_decay=check_real(weight_decay, "weight_decay", minimum=0.0, maximum=1e6),
        grad_clip=None if grad_clip is None else check_real(grad_clip, "grad_clip", minimum=0.0, strict=True),
        time_budget_s=None if time_budget_s is None else check_real(time_budget_s, "time_budget_s", minimum=0.0, strict=True),
        stop_at=None if stop_at is None else check_int(stop_at, "stop_at", minimum=0),
    )
    check_choice(lr_schedule, LR_SCHEDULES, "lr_schedule")
    if ema_decay is not None:
        ema_decay = check_real(ema_decay, "ema_decay", minimum=0.0, strict=True)
        if ema_decay >= 1.0:
            raise InputValueError(f"ema_decay must lie in (0, 1) (e.g. 0.99), or be None; got {ema_decay!r}")
    out["ema_decay"] = ema_decay
    if not isinstance(ema_warmup, bool):
        raise InputTypeError(f"ema_warmup must be True or False, got {ema_warmup!r}")
    if not isinstance(desc, str):
        raise InputTypeError(f"desc must be a str (the progress bar's label), got {type(desc).__name__}")
    if callback is not None and not callable(callback):
        raise InputTypeError("callback must be a function callback(step, seconds, model), or None")
    if resume is not None and not isinstance(resume, dict):
        raise InputTypeError(f"resume must be a TrainResult.state dict (or a checkpoint's 'train_state'), got {type(resume).__name__}")
    return out


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
    """Train ``model`` for ``steps`` AdamW steps on ``loss_fn``; return the loss history.

    Each step draws ``batch = data[randint]`` (or ``data(batch_size, g)``) and minimises
    ``loss_fn(model, batch, g)`` (a scalar), where ``g`` is one ``torch.Generator`` seeded with
    ``seed`` that also feeds the loss's own randomness (timesteps, noise). With the model's
    initial weights fixed (seed before building it), a run is exactly reproducible.

    The run stops with :class:`~diffusion_lib.errors.NonFiniteError` at the first step whose
    loss, gradient (checked before the update, so the weights stay finite) or updated weights
    contain NaN or inf; the message names the step, the quantity and what to try.

    Args:
        model: the network (trained in place; left in eval mode at the end).
        loss_fn: ``loss_fn(model, batch, generator) -> scalar tensor``.
        data: a tensor of examples ``(N, ...)`` or a sampler ``data(batch_size, generator)``.
        steps: number of optimiser steps (this, not the clock, decides the result).
        batch_size: examples per step.
        lr: peak learning rate of AdamW.
        seed: seed of the generator for batches and noise.
        warmup_steps: linear warm-up length.
        lr_schedule: ``"cosine"`` (decay to ``final_lr_fraction * lr``) or ``"constant"``.
        final_lr_fraction: where the cosine ends, as a fraction of ``lr``.
        weight_decay: AdamW's decoupled weight decay (0 gives plain Adam).
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        ema_decay: keep an exponential moving average of the weights with this decay
            (``torch.optim.swa_utils.AveragedModel``); ``TrainResult.ema_model`` holds it.
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
            uninterrupted run (``steps`` and the other arguments must be the same), unless the
            model draws random numbers of its own: dropout masks come from torch's global
            generator, which the state does not hold, so after a resume in a new process (or
            after :func:`~diffusion_lib.train.run.train_run` re-seeds it to rebuild a model from a
            file) they differ from an uninterrupted run's.
        stop_at: stop after this many steps in total (<= ``steps``), e.g. to save a checkpoint;
            the learning-rate schedule still spans ``steps``.
    """
    a = _check_args(model, loss_fn, data, steps, batch_size, lr, seed, warmup_steps, lr_schedule, final_lr_fraction,
                    weight_decay, grad_clip, ema_decay, ema_warmup, time_budget_s, desc, callback, resume, stop_at)
    steps, batch_size, lr, grad_clip, ema_decay = a["steps"], a["batch_size"], a["lr"], a["grad_clip"], a["ema_decay"]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise InputValueError("the model has no trainable parameters (all have requires_grad=False); nothing to train")
    params = [p for _, p in named]
    # foreach: one fused update for all parameters (on the CPU the same numbers as the per-tensor
    # loop, bit for bit, and several times fewer kernel launches)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=a["weight_decay"], foreach=True)
    g = torch.Generator().manual_seed(a["seed"])
    ema = None
    if ema_decay is not None:
        ema = AveragedModel(model, multi_avg_fn=_ema_update(ema_decay, ema_warmup))
        ema.update_parameters(model)  # n_averaged = 1: the average starts at the initial weights
        ema.module.eval()
        ema.module.requires_grad_(False)
    losses: list[float] = []
    lrs: list[float] = []
    start_step = 0
    if resume is not None:
        start_step = _restore(resume, steps, opt, g, ema)
        if hasattr(loss_fn, "load_state_dict"):
            if resume.get("loss_fn") is None:
                raise InputValueError("this loss_fn has a state (e.g. the loss-aware timestep sampler) but the state "
                                      "being resumed holds none: resume with the loss_fn settings of the original run")
            loss_fn.load_state_dict(resume["loss_fn"])
        losses, lrs = [float(v) for v in resume["losses"]], [float(v) for v in resume["lrs"]]
    end_step = steps if a["stop_at"] is None else a["stop_at"]
    if not start_step <= end_step <= steps:
        raise InputValueError(f"stop_at must lie between the resumed step {start_step} and steps={steps}, got {stop_at!r}")
    for group in opt.param_groups:
        group["initial_lr"] = lr
    factor = partial(_lr_factor, steps=steps, warmup_steps=a["warmup_steps"], schedule=lr_schedule,
                     final_lr_fraction=a["final_lr_fraction"])
    sched = LambdaLR(opt, factor, last_epoch=start_step - 1)
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
            lr_now = opt.param_groups[0]["lr"]
            batch = _sample_batch(data, batch_size, g)
            with finite_checks_guarded_elsewhere():  # the loss, gradient and weight guards below cover it
                loss = loss_fn(model, batch, g)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise InputTypeError(
                    "loss_fn must return a scalar tensor (take .mean() of per-example losses); "
                    f"got {type(loss).__name__}" + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else "")
                )
            value = float(loss.detach())
            if not math.isfinite(value):
                raise NonFiniteError(f"the loss became {value} at step {step + 1}: {_advice(lr, grad_clip)}")
            if not loss.requires_grad:
                raise InputValueError("loss_fn returned a loss that does not depend on the model's trainable parameters; "
                                      "compute it from model(batch, ...) without torch.no_grad()")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            bad = _first_non_finite([(n, p.grad) for n, p in named if p.grad is not None])
            if bad is not None:
                raise NonFiniteError(f"the gradient of parameter '{bad}' became NaN or inf at step {step + 1} "
                                     f"(the weights were not updated): {_advice(lr, grad_clip)}")
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
            sched.step()
            bad = _first_non_finite(named)
            if bad is not None:
                raise NonFiniteError(f"the weight '{bad}' became NaN or inf in the update of step {step + 1}, so the "
                                     f"model is no longer usable: {_advice(lr, grad_clip)}")
            if ema is not None:
                ema.update_parameters(model)
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
            if a["time_budget_s"] is not None and elapsed > a["time_budget_s"] and step + 1 < end_step:
                stopped_early = True
                warnings.warn(
                    f"{desc}: the time budget of {a['time_budget_s']:g} s ran out after {step + 1} of {steps} "
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
    ema_model = None if ema is None else ema.module
    state = {
        "step": len(losses), "steps": steps, "optimizer": opt.state_dict(), "generator": g.get_state(),
        "ema": None if ema_model is None else ema_model.state_dict(), "losses": list(losses), "lrs": list(lrs),
    }
    if hasattr(loss_fn, "state_dict"):  # a loss with its own state, e.g. the loss-aware timestep sampler
        state["loss_fn"] = loss_fn.state_dict()
    return TrainResult(losses=losses, steps=len(losses), seconds=seconds, stopped_early=stopped_early,
                       ema_model=ema_model, lrs=lrs, state=state)


def _restore(state: dict, steps: int, opt: torch.optim.Optimizer, g: torch.Generator,
             ema: AveragedModel | None) -> int:
    """Load a ``TrainResult.state`` into the optimiser, generator and EMA; return its step."""
    missing = sorted(set(_STATE_KEYS) - set(state))
    if missing:
        raise InputValueError(f"resume must be a TrainResult.state (or a checkpoint's 'train_state'); it lacks {missing}")
    step = check_int(state["step"], "resume['step']", minimum=0)
    if int(state["steps"]) != steps:
        raise InputValueError(
            f"the run being resumed was planned for steps={state['steps']} (its learning-rate schedule "
            f"depends on it); pass the same steps, got {steps}"
        )
    if step > steps:
        raise InputValueError(f"resume['step'] = {step} exceeds steps = {steps}; this state belongs to another run")
    if (state["ema"] is None) != (ema is None):
        raise InputValueError("resume with the same ema_decay setting as the original run (EMA on in one, off in the other)")
    try:
        opt.load_state_dict(state["optimizer"])
        g.set_state(state["generator"])
        if ema is not None:
            ema.module.load_state_dict(state["ema"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise InputValueError(f"resume does not fit this model (another architecture or parameter set): {err}") from None
    if ema is not None:
        ema.n_averaged.fill_(step + 1)
    return step


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
    seconds = check_real(seconds, "seconds", minimum=0.0, strict=True)
    safety = check_real(safety, "safety", minimum=0.0, maximum=1.0, strict=True)
    probe_steps = check_int(probe_steps, "probe_steps", minimum=1)
    if not isinstance(model, nn.Module):
        raise InputTypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    probe = copy.deepcopy(model)
    train(probe, loss_fn, data, steps=3, batch_size=batch_size, progress=False)  # warm-up
    result = train(probe, loss_fn, data, steps=probe_steps, batch_size=batch_size, progress=False)
    rate = result.steps_per_second
    return max(1, int(safety * seconds * rate)), rate
