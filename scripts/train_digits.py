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
``--ship`` the final file holds float16 EMA weights only (small), plus the test-set bound.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from diffusion_lib.checkpoints import (
    LOSSES, load_checkpoint, make_config, make_diffusion, save_checkpoint, test_bound, train_run,
)
from diffusion_lib.utils import set_threads


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
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared machine)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    p.add_argument("--ship", action="store_true", help="write float16 EMA weights only (small file) plus the test bound")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="write <out>.resume.pt every this many steps")
    p.add_argument("--resume", type=Path, default=None, help="continue from a .resume.pt checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip the test-set bound at the end")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    resume = None
    if args.resume is not None:
        resume = load_checkpoint(args.resume)
        config = resume["config"]
        print(f"resuming {args.resume} at step {resume['train_state']['step']} of {config['steps']}")
    else:
        steps = args.steps
        if steps is None and args.minutes is not None:
            from diffusion_lib.training import estimate_steps
            from diffusion_lib.checkpoints import diffusion_loss_fn, make_model
            from diffusion_lib.data import load_digits_split

            probe_cfg = make_config(loss=args.loss, T=args.T, schedule=args.schedule)
            images, _ = load_digits_split("train")
            loss_fn = diffusion_loss_fn(make_diffusion(probe_cfg), images)
            steps, rate = estimate_steps(make_model(probe_cfg), loss_fn, torch.arange(1000), 60 * args.minutes,
                                         batch_size=args.batch_size, safety=0.9)
            print(f"speed probe: {rate:.2f} steps/s -> {steps} steps in {args.minutes} min (not reproducible across machines)")
        config = make_config(
            loss=args.loss, schedule=args.schedule, T=args.T, steps=steps or 4000, batch_size=args.batch_size,
            lr=args.lr, ema_decay=args.ema_decay, seed=args.seed, conditional=args.conditional,
            p_uncond=args.p_uncond,
            model={"dim": args.dim, "dim_mults": list(args.dim_mults), "block_type": args.block_type,
                   "attention": None if args.attention == "none" else args.attention},
        )
    print("config:", json.dumps(config))
    resume_path = args.out.with_name(args.out.name.removesuffix(".pt") + ".resume.pt")
    budget = None if args.minutes is None else 60 * args.minutes
    model, result, seconds = None, None, 0.0
    step = 0 if resume is None else int(resume["train_state"]["step"])
    total = int(config["steps"])
    while step < total:
        stop = min(total, (step // args.checkpoint_every + 1) * args.checkpoint_every)
        t0 = time.perf_counter()
        model, result = train_run(config, model=model, resume=resume, stop_at=stop, time_budget_s=budget)
        seconds += time.perf_counter() - t0
        save_checkpoint(resume_path, model, config, result)
        resume = load_checkpoint(resume_path)  # continue from the file: what a resumed run would see
        model = None
        step = result.steps
        print(f"step {step}/{total}: mean loss of the last 100 steps {sum(result.losses[-100:]) / len(result.losses[-100:]):.4f}, "
              f"{seconds:.0f} s so far; wrote {resume_path}", flush=True)
        if result.stopped_early:
            print("time budget reached; stopping early")
            break
    if resume is None:
        raise SystemExit("nothing to do: the resumed run is already complete")
    # rebuild the final model from the last resume file (identical to the in-memory one)
    from diffusion_lib.checkpoints import load_pretrained

    ema_model, diffusion, final = load_pretrained(resume_path, use_ema=True)
    metrics = {"train_steps": int(step), "train_seconds": round(seconds, 1), "threads": args.threads}
    if not args.no_eval:
        t0 = time.perf_counter()
        bound = test_bound(ema_model, diffusion, "test", progress=True)
        metrics.update({"test_nats": round(bound["nats"], 3), "test_nats_se": round(bound["nats_se"], 3),
                        "test_bits_per_dim": round(bound["bits_per_dim"], 4)})
        print(f"test bound: {bound['nats']:.2f} ± {bound['nats_se']:.2f} nats per image "
              f"({bound['bits_per_dim']:.3f} bits/dim) in {time.perf_counter() - t0:.0f} s")
    # the final file: the training weights + EMA (+ training state unless shipped)
    from diffusion_lib.training import TrainResult

    fake = TrainResult(losses=final["train_state"]["losses"], steps=step, seconds=seconds, ema_model=ema_model,
                       state=final["train_state"])
    from diffusion_lib.checkpoints import make_model

    raw = make_model(config)
    raw.load_state_dict(final["model"])
    metrics["final_loss_mean_100"] = round(sum(fake.losses[-100:]) / len(fake.losses[-100:]), 5)
    save_checkpoint(args.out, raw, config, fake, half=args.ship,
                    metrics={**metrics, "losses": [round(v, 5) for v in fake.losses]})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); metrics {json.dumps(metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
