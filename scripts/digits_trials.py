#!/usr/bin/env python
"""Trial runs behind the shipped digit model's recipe: train a candidate, track its bounds on TRAIN and VAL.

Each trial trains one configuration with the book's loop and, every ``--eval-every`` steps,
estimates the bound of its EMA weights on the first ``--images`` digits of the TRAIN and of the
VAL split (the stratified estimate of :func:`diffusion_lib.eval.negative_bound`, ``--K`` network
calls per image, the same seed at every evaluation, clipped x0). The TEST split is never
looked at: the recipe is chosen on VAL alone, and TEST is reported once, for the final model,
by ``scripts/train_digits.py``. One JSON line per evaluation is appended to ``--log``::

    python scripts/digits_trials.py --name cos16 --schedule cosine --dim 16 --steps 1500
    python scripts/digits_trials.py --summary            # the best VAL point of every trial
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from diffusion_lib.data import load_digits_split
from diffusion_lib.eval.digits import negative_bound
from diffusion_lib.train import diffusion_loss_fn, make_config, make_diffusion, make_model, train
from diffusion_lib.utils import set_threads

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "benchmarks" / "digits_trials.jsonl"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", help="label of the trial in the log")
    p.add_argument("--summary", action="store_true", help="print the best VAL point of every logged trial and exit")
    p.add_argument("--log", type=Path, default=LOG)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--images", type=int, default=200, help="TRAIN and VAL images per evaluation")
    p.add_argument("--K", type=int, default=50, help="network calls per image of the bound estimate")
    p.add_argument("--loss", default="hybrid")
    p.add_argument("--schedule", default="cosine")
    p.add_argument("--T", type=int, default=1000)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--t-sampling", default="inverse_mix")
    p.add_argument("--mean-type", default="eps")
    p.add_argument("--augment", default="none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args(argv)


def summary(log: Path) -> int:
    """Print, for every trial in ``log``, the evaluation with the lowest VAL bound."""
    rows: dict[str, list[dict]] = {}
    for line in log.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            rows.setdefault(r["name"], []).append(r)
    print(f"{'trial':28s} {'step':>5s} {'VAL':>7s} {'TRAIN':>7s} {'gap':>6s} {'s/step':>7s}")
    for name, rs in rows.items():
        best = min(rs, key=lambda r: r["val"])
        print(f"{name:28s} {best['step']:5d} {best['val']:7.2f} {best['train']:7.2f} "
              f"{best['val'] - best['train']:6.2f} {best['seconds'] / best['step']:7.3f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.summary:
        return summary(args.log)
    if not args.name:
        print("digits_trials.py: error: --name is required for a trial", file=sys.stderr)
        return 1
    set_threads(args.threads)
    config = make_config(loss=args.loss, schedule=args.schedule, T=args.T, steps=args.steps, lr=args.lr,
                         ema_decay=args.ema_decay, seed=args.seed, t_sampling=args.t_sampling,
                         model_mean_type=args.mean_type, weight_decay=args.weight_decay, augment=args.augment,
                         model={"dim": args.dim, "fourier_exponents": [3, 4], "dropout": args.dropout})
    torch.manual_seed(config["seed"])
    model = make_model(config)
    diffusion = make_diffusion(config)
    images, _ = load_digits_split("train")
    val = load_digits_split("val")[0][: args.images]
    loss_fn = diffusion_loss_fn(diffusion, images, t_sampling=config["t_sampling"], augment=config["augment"])
    state, seconds = None, 0.0
    for stop in range(args.eval_every, args.steps + 1, args.eval_every):
        result = train(model, loss_fn, torch.arange(images.shape[0]), steps=config["steps"],
                       batch_size=config["batch_size"], lr=config["lr"], seed=config["seed"],
                       warmup_steps=config["warmup_steps"], weight_decay=config["weight_decay"],
                       grad_clip=config["grad_clip"], ema_decay=config["ema_decay"], ema_warmup=config["ema_warmup"],
                       progress=False, resume=state, stop_at=stop)
        state, seconds = result.state, seconds + result.seconds
        ema = result.ema_model.eval()
        t0 = time.perf_counter()
        b = {split: negative_bound(diffusion, ema, x, num_timesteps=args.K, clip_x0=True,
                                   generator=torch.Generator().manual_seed(1)).nats_per_image
             for split, x in (("train", images[: args.images]), ("val", val))}
        row = {"name": args.name, "step": stop, "train": round(b["train"], 3), "val": round(b["val"], 3),
               "seconds": round(seconds, 1), "eval_seconds": round(time.perf_counter() - t0, 1),
               "config": config}
        print(f"{args.name} step {stop}: VAL {b['val']:.2f} TRAIN {b['train']:.2f} ({seconds:.0f} s)", flush=True)
        with open(args.log, "a") as f:
            f.write(json.dumps(row) + "\n")
        model.train()
    return 0


if __name__ == "__main__":
    sys.exit(main())
