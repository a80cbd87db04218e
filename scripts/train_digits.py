#!/usr/bin/env python
"""Train a DDPM U-Net on the 8x8 digits and write a checkpoint (the shipped ones come from here).

Seeded and deterministic: the same flags on the same machine give the same file. Training length
is a step count (``--steps``), so a run is reproducible; ``--minutes`` only adds a safety stop.

Examples::

    python scripts/train_digits.py --steps 200 --out /tmp/quick.pt          # a smoke test
    python scripts/train_digits.py --loss hybrid --T 1000 --steps 4000 \
        --out checkpoints/ddpm_digits.pt --ship                             # see checkpoints/README.md

Every ``--checkpoint-every`` steps a full-precision checkpoint with the training state is written
to ``<out>.resume.pt``; ``--resume <that file>`` continues the run bit-identically. With
``--ship`` the final file holds float16 weights only (small), plus the test-set bound. Of the two
candidate models at the end, the EMA weights and the last weights, the one with the lower bound on
the validation split is kept (``metrics["weights"]`` says which).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from diffusion_lib.data import load_digits_split
from diffusion_lib.errors import DiffusionLibError
from diffusion_lib.eval.digits import negative_bound
from diffusion_lib.train import (
    LOSSES, TrainResult, load_checkpoint, make_config, make_diffusion, make_model, save_checkpoint, train_run,
)
from diffusion_lib.utils import set_threads, unwritable_reason


class UsageError(Exception):
    """A command-line argument that cannot work; printed in one line, no traceback."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--loss", choices=sorted(LOSSES), default="hybrid",
                   help="simple: L_simple with sigma^2 = beta_t; vlb: the bound; hybrid: L_simple + 0.001 L_vlb (learned variances)")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="linear")
    p.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps (default 4000)")
    p.add_argument("--minutes", type=float, default=None,
                   help="time budget: with --steps, a safety stop; alone, --steps is set from a speed probe (not reproducible)")
    p.add_argument("--conditional", action="store_true", help="class-conditional model with label dropout (for guidance)")
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout probability when --conditional")
    p.add_argument("--dim", type=int, default=32, help="U-Net base width")
    p.add_argument("--dim-mults", type=int, nargs="+", default=[1, 2])
    p.add_argument("--block-type", choices=["resnet", "convnext"], default="resnet")
    p.add_argument("--attention", choices=["full", "linear", "none"], default="linear")
    p.add_argument("--fourier", type=int, nargs="*", default=[],
                   help="Fourier-feature exponents n: add sin/cos(2^n pi x_t) to the input (e.g. 3 4; see UNet)")
    p.add_argument("--t-sampling", choices=["uniform", "inverse_mix", "loss_aware"], default="uniform",
                   help="how training draws t (inverse_mix: half uniform, half p(t) ~ 1/t; loss_aware: improved DDPM's "
                        "p(t) ~ sqrt(E[L_t^2]); see diffusion_lib.core.timesteps)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout rate in the ResNet blocks")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay")
    p.add_argument("--augment", choices=["none", "shift"], default="none",
                   help="training augmentation (shift: half of the images moved by one pixel; see diffusion_lib.data.augment)")
    p.add_argument("--select-every", type=int, default=None,
                   help="early stopping: every this many steps estimate the VALIDATION bound of the EMA weights and keep "
                        "the best snapshot (must divide --checkpoint-every)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    p.add_argument("--ship", action="store_true", help="write float16 EMA weights only (small file) plus the test bound")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="write <out>.resume.pt every this many steps")
    p.add_argument("--resume", type=Path, default=None, help="continue from a .resume.pt checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the bounds at the end")
    p.add_argument("--weights", choices=["val", "ema", "raw"], default="val",
                   help="which weights to keep: the lower validation bound (val), the EMA, or the last weights (raw)")
    p.add_argument("--val-images", type=int, default=350, help="validation images used to choose the weights")
    p.add_argument("--clip-x0", action="store_true",
                   help="compute the bounds with the prediction of x_0 clipped to [-1, 1] (the reverse process of clipped sampling)")
    return p.parse_args(argv)




def check_args(args: argparse.Namespace) -> None:
    """Refuse arguments that cannot work, before anything is trained (raises :class:`UsageError`)."""
    def positive(name: str, value, allow_none: bool = False) -> None:
        if value is None and allow_none:
            return
        if value is None or not value >= 1:
            raise UsageError(f"--{name} must be a positive integer, got {value}")

    positive("steps", args.steps, allow_none=True)
    for name in ("T", "dim", "batch-size", "threads", "checkpoint-every", "val-images"):
        positive(name, getattr(args, name.replace("-", "_")))
    if args.T < 2:
        raise UsageError(f"--T must be at least 2 (diffusion steps), got {args.T}")
    if any(m < 1 for m in args.dim_mults):
        raise UsageError(f"--dim-mults must be positive integers, got {args.dim_mults}")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise UsageError(f"--minutes must be a positive number of minutes, got {args.minutes}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if not 0 < args.ema_decay < 1:
        raise UsageError(f"--ema-decay must lie in (0, 1), e.g. 0.999, got {args.ema_decay}")
    if not 0 <= args.p_uncond < 1:
        raise UsageError(f"--p-uncond must lie in [0, 1), got {args.p_uncond}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise UsageError(f"--weight-decay must be a number >= 0, got {args.weight_decay}")
    if args.select_every is not None:
        positive("select-every", args.select_every)
        if args.checkpoint_every % args.select_every:
            raise UsageError(f"--select-every {args.select_every} must divide --checkpoint-every {args.checkpoint_every}")
        if args.no_eval:
            raise UsageError("--select-every chooses the weights on the validation bound; it cannot be used with --no-eval")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must lie in [0, 1), got {args.dropout}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    n_val = load_digits_split("val")[0].shape[0]
    if args.val_images > n_val:
        raise UsageError(f"--val-images must be at most {n_val} (the size of the validation split), got {args.val_images}")
    if args.resume is not None and not args.resume.is_file():
        raise UsageError(f"--resume {args.resume}: no such file; pass the <out>.resume.pt written by an earlier run")
    out = args.out
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; pass a file name such as {out / 'model.pt'}")
    problem = unwritable_reason(out.parent)
    if problem:
        raise UsageError(f"--out {out}: {problem}")


def main(argv: list[str] | None = None) -> int:
    """Run the script; a user error prints one line (``error: ...``) and returns 1, a bug raises."""
    args = parse_args(argv)
    try:
        check_args(args)
        return run(args)
    except (UsageError, DiffusionLibError, OSError) as err:
        print(f"train_digits.py: error: {err}", file=sys.stderr)
        return 1


def _bound(net: torch.nn.Module, diffusion, images: torch.Tensor, clip_x0: bool):
    """The exact test/validation bound (all T terms, one draw of x_t each, seed 0) of ``net`` on ``images``."""
    return negative_bound(diffusion, net, images, clip_x0=clip_x0, generator=torch.Generator().manual_seed(0))


def _weights(ckpt: dict, config: dict) -> torch.nn.Module:
    """The U-Net of ``config`` with the (EMA) weights stored in the checkpoint dict ``ckpt``."""
    net = make_model(config)
    net.load_state_dict(ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"])
    return net.eval()


def _val_estimate(net: torch.nn.Module, diffusion, args: argparse.Namespace) -> float:
    """The stratified estimate (50 network calls per image, or T if fewer; seed 1) of the VALIDATION bound for early stopping."""
    images = load_digits_split("val")[0][: args.val_images]
    return negative_bound(diffusion, net.eval(), images, num_timesteps=min(50, diffusion.T), clip_x0=args.clip_x0,
                          generator=torch.Generator().manual_seed(1)).nats_per_image


def run(args: argparse.Namespace) -> int:
    """Train, evaluate and write the checkpoint for validated arguments."""
    set_threads(args.threads)
    resume = None
    if args.resume is not None:
        resume = load_checkpoint(args.resume)
        config = resume["config"]
        if resume["train_state"] is None:
            raise UsageError(f"--resume {args.resume} holds no training state (a shipped, weights-only file); "
                             "pass the <out>.resume.pt written by an earlier run")
        print(f"resuming {args.resume} at step {resume['train_state']['step']} of {config['steps']}")
    else:
        steps = args.steps
        if steps is None and args.minutes is not None:
            from diffusion_lib.train import diffusion_loss_fn, estimate_steps

            probe_cfg = make_config(loss=args.loss, T=args.T, schedule=args.schedule)
            images, _ = load_digits_split("train")
            loss_fn = diffusion_loss_fn(make_diffusion(probe_cfg), images)
            steps, rate = estimate_steps(make_model(probe_cfg), loss_fn, torch.arange(1000), 60 * args.minutes,
                                         batch_size=args.batch_size, safety=0.9)
            print(f"speed probe: {rate:.2f} steps/s -> {steps} steps in {args.minutes} min (not reproducible across machines)")
        config = make_config(
            loss=args.loss, schedule=args.schedule, T=args.T, steps=steps or 4000, batch_size=args.batch_size,
            lr=args.lr, ema_decay=args.ema_decay, seed=args.seed, conditional=args.conditional,
            p_uncond=args.p_uncond, t_sampling=args.t_sampling, weight_decay=args.weight_decay, augment=args.augment,
            model={"dim": args.dim, "dim_mults": list(args.dim_mults), "block_type": args.block_type,
                   "attention": None if args.attention == "none" else args.attention,
                   **({"fourier_exponents": list(args.fourier)} if args.fourier else {}),
                   **({"dropout": args.dropout} if args.dropout else {})},
        )
    print("config:", json.dumps(config))
    resume_path = args.out.with_name(args.out.name.removesuffix(".pt") + ".resume.pt")
    budget = None if args.minutes is None else 60 * args.minutes
    model, result = None, None
    step = 0 if resume is None else int(resume["train_state"]["step"])
    # training time so far (None when resuming a file that did not record it)
    seconds = 0.0 if resume is None else resume["metrics"].get("train_seconds")
    total = int(config["steps"])
    every = args.select_every or args.checkpoint_every
    best_path = args.out.with_name(args.out.name.removesuffix(".pt") + ".best.pt")
    best = None  # early stopping: the EMA snapshot with the lowest estimated VALIDATION bound so far
    if args.select_every and resume is not None and best_path.is_file():
        best = load_checkpoint(best_path)
    curve = [] if best is None else list(best["metrics"]["val_curve"])
    while step < total:
        stop = min(total, (step // every + 1) * every)
        t0 = time.perf_counter()
        model, result = train_run(config, model=model, resume=resume, stop_at=stop, time_budget_s=budget,
                                  progress=not args.select_every)
        if args.select_every:
            est = _val_estimate(result.ema_model, make_diffusion(config), args)
            curve.append([int(result.steps), round(est, 3)])
            if best is None or est < best["metrics"]["val_estimate"]:
                save_checkpoint(best_path, result.ema_model, config, None,
                                metrics={"step": int(result.steps), "val_estimate": est, "val_curve": curve})
                best = load_checkpoint(best_path)
            else:  # keep the best snapshot's file in step with the curve, for a resumed run
                save_checkpoint(best_path, _weights(best, config), config, None,
                                metrics={**best["metrics"], "val_curve": curve})
            print(f"step {result.steps}: estimated VALIDATION bound of the EMA weights {est:.2f} nats "
                  f"(best {best['metrics']['val_estimate']:.2f} at step {best['metrics']['step']})", flush=True)
        if seconds is not None:
            seconds += time.perf_counter() - t0
        if stop % args.checkpoint_every and stop != total:
            model, resume = model, {"config": config, "model": model.state_dict(), "train_state": result.state}
            step = result.steps
            continue
        save_checkpoint(resume_path, model, config, result, metrics={"train_seconds": seconds})
        resume = load_checkpoint(resume_path)  # continue from the file: what a resumed run would see
        model = None
        step = result.steps
        print(f"step {step}/{total}: mean loss of the last 100 steps {sum(result.losses[-100:]) / len(result.losses[-100:]):.4f}, "
              f"{'?' if seconds is None else round(seconds)} s so far; wrote {resume_path}", flush=True)
        if result.stopped_early:
            print("time budget reached; stopping early")
            break
    if result is None:  # nothing was trained: the resumed file had already finished its steps
        print(f"the resumed run {args.resume} is already complete ({step} of {total} steps); evaluating it")
    final = resume
    losses = final["train_state"]["losses"]
    metrics = {"train_steps": int(step), "train_seconds": None if seconds is None else round(seconds, 1),
               "threads": args.threads, "final_loss_mean_100": round(sum(losses[-100:]) / len(losses[-100:]), 5)}
    # The two candidate models: the EMA weights and the last weights. The validation split decides
    # which one is kept (with a short run and decay 0.999 the EMA still remembers the initial weights).
    diffusion = make_diffusion(config)
    candidates = {}
    for name in ("ema", "raw"):
        weights = final["ema"] if name == "ema" else final["model"]
        if weights is not None:
            net = make_model(config)
            net.load_state_dict(weights)
            candidates[name] = net.eval()
    chosen = args.weights if args.weights in candidates else ("ema" if "ema" in candidates else "raw")
    if args.select_every:  # early stopping: the best EMA snapshot by the VALIDATION estimate
        if best is None:
            raise UsageError(f"the early-stopping snapshot {best_path} is missing (a finished run deletes it with "
                             "--ship); train again from the start")
        candidates["best"] = _weights(best, config)
        chosen = "best"
        metrics.update(selected_step=int(best["metrics"]["step"]), val_estimate=round(best["metrics"]["val_estimate"], 3),
                       val_curve=curve)
    elif args.weights == "val" and not args.no_eval:
        for name, net in candidates.items():
            t0 = time.perf_counter()
            val = _bound(net, diffusion, load_digits_split("val")[0][:args.val_images], args.clip_x0)
            metrics[f"val_nats_{name}"] = round(val.nats_per_image, 3)
            print(f"validation bound of the {name} weights: {val.nats_per_image:.2f} ± {val.stderr_nats:.2f} nats "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        chosen = min(candidates, key=lambda n: metrics[f"val_nats_{n}"])
    if not args.no_eval:
        # TRAIN (its first 447 digits, as many as TEST) and TEST, exact: the memorisation gap of the chosen model
        for split in ("train", "test"):
            t0 = time.perf_counter()
            bound = _bound(candidates[chosen], diffusion, load_digits_split(split)[0][:447], args.clip_x0)
            metrics.update({f"{split}_nats": round(bound.nats_per_image, 3), f"{split}_nats_se": round(bound.stderr_nats, 3),
                            f"{split}_bits_per_dim": round(bound.bits_per_dim, 4)})
            print(f"{split.upper()} bound ({chosen} weights): {bound.nats_per_image:.2f} ± {bound.stderr_nats:.2f} nats per "
                  f"image ({bound.bits_per_dim:.3f} bits/dim) in {time.perf_counter() - t0:.0f} s", flush=True)
    metrics["weights"] = chosen
    # which reverse process the stored bounds belong to (None: no bound was computed by this run)
    metrics["bound_clip_x0"] = None if args.no_eval else bool(args.clip_x0)
    metrics["losses"] = [round(v, 5) for v in losses]
    if args.ship and args.select_every:
        best_path.unlink(missing_ok=True)
    if args.ship:
        # float16 weights of the chosen model only: small, loadable, not resumable
        save_checkpoint(args.out, candidates[chosen], config, None, half=True, metrics=metrics)
    elif chosen == "best":  # the early-stopping snapshot, full precision (the .resume.pt file continues the run)
        save_checkpoint(args.out, candidates["best"], config, None, metrics=metrics)
    else:
        fake = TrainResult(losses=losses, steps=step, seconds=seconds or 0.0, ema_model=candidates.get("ema"),
                           state=final["train_state"])
        save_checkpoint(args.out, candidates["raw"], config, fake, metrics=metrics)
    shown = {k: v for k, v in metrics.items() if k != "losses"}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); metrics {json.dumps(shown)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
