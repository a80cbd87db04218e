"""Train the small digit classifier whose features define the book's Fréchet distance.

Usage:
    python scripts/train_digit_classifier.py [--steps 2000] [--seed 0] [--out checkpoints/digit_classifier.pt]

Trains :class:`diffusion_lib.eval.fid.DigitClassifier` on the TRAIN split of the 8x8 digits (one
thread, seeded, so a rerun on the same machine gives the same weights), prints its accuracy on
the train, val and test splits and the real-vs-real Fréchet distances, and writes the checkpoint.
Takes about 15-30 s on one core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from diffusion_lib import set_seed
from diffusion_lib.utils import unwritable_reason
from diffusion_lib.data import load_digits_split
from diffusion_lib.errors import DiffusionLibError
from diffusion_lib.eval.fid import (
    DEFAULT_CLASSIFIER_PATH,
    FrechetDigitDistance,
    classifier_accuracy,
    save_digit_classifier,
    train_digit_classifier,
)




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="optimiser steps (batch 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_CLASSIFIER_PATH)
    args = parser.parse_args(argv)
    problem = _problem(args)
    if problem is None:
        try:
            return run(args)
        except (DiffusionLibError, OSError) as err:
            problem = str(err)
    print(f"train_digit_classifier.py: error: {problem}", file=sys.stderr)
    return 1


def _problem(args: argparse.Namespace) -> str | None:
    """Why the arguments cannot work, in one line (None if they can)."""
    if args.steps < 1:
        return f"--steps must be a positive integer, got {args.steps}"
    if args.seed < 0:
        return f"--seed must be >= 0, got {args.seed}"
    out = args.out
    if out.is_dir():
        return f"--out {out} is a folder; pass a file name such as {out / 'digit_classifier.pt'}"
    problem = unwritable_reason(out.parent)
    if problem:
        return f"--out {out}: {problem}"
    return None


def run(args: argparse.Namespace) -> int:
    """Train, report and save the classifier for validated arguments."""
    torch.set_num_threads(1)
    set_seed(args.seed)
    x_train, y_train = load_digits_split("train")
    result = train_digit_classifier(x_train, y_train, steps=args.steps, seed=args.seed, progress=True)
    model = result.model
    acc = {split: classifier_accuracy(model, *load_digits_split(split)) for split in ("train", "val", "test")}
    print(f"trained {args.steps} steps in {result.seconds:.1f} s; accuracy: "
          + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    fd = FrechetDigitDistance(model)
    test = load_digits_split("test")[0]
    floors = {
        "val_vs_test": fd(load_digits_split("val")[0], test),
        "train_vs_test": fd(x_train, test),
    }
    print("real-vs-real Fréchet distance: " + ", ".join(f"{k} {v:.3f}" for k, v in floors.items()))
    meta = {"seed": args.seed, "steps": args.steps, "torch": torch.__version__,
            **{f"accuracy_{k}": v for k, v in acc.items()}, **{f"fd_{k}": v for k, v in floors.items()}}
    save_digit_classifier(model, args.out, metadata=meta)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
