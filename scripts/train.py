#!/usr/bin/env python
"""Train the book's image U-Net on a CPU, a GPU or several processes (torchrun) and write a checkpoint.

The general entry point next to ``scripts/train_digits.py`` (which makes the shipped files and is
left as it is). It uses the same loop (:func:`diffusion_lib.train.train`), the same checkpoint
format (:mod:`diffusion_lib.train.checkpoints`) and torch's own distributed engine
(:mod:`diffusion_lib.train.distributed`). Examples::

    python scripts/train.py --steps 200 --out /tmp/digits.pt                   # one CPU process
    python scripts/train.py --device cuda --amp --steps 4000 --out /tmp/gpu.pt  # one GPU, bf16 autocast
    torchrun --nproc_per_node=4 scripts/train.py --batch-size 256 --out /tmp/ddp.pt
    python scripts/train.py --dataset fashion-mnist --dim-mults 1 2 2 --out /tmp/fm.pt  # 28x28, downloaded once
    python scripts/train.py --dataset cifar10 --device cuda --amp --out /tmp/cifar.pt   # 3x32x32

``--dataset mnist | fashion-mnist | cifar10`` reads the files from ``--data-root`` (default
``~/.cache/diffusion_book/<name>``), downloading and checksumming missing ones first
(:func:`diffusion_lib.data.load_image_dataset`); offline it says so in one sentence and trains on
the 8x8 digits. The U-Net's input channels and ``config["data"]`` follow the data that was loaded.

``--batch-size`` is the global batch: with ``K`` processes each takes ``batch_size / K`` rows of
the same globally drawn batch, so ``K`` processes train the same model as one (up to rounding),
and ``--resume`` works with another number of processes. Every ``--checkpoint-every`` steps, and
at the end, rank 0 writes ``--out`` (full precision, with the training state, so it can be
resumed and loaded with ``load_pretrained``); ``metrics["dataset"]`` names the data it saw.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.distributed as tdist

from diffusion_lib.data import DIGITS_NUM_LEVELS, load_digits_split, load_image_dataset
from diffusion_lib.errors import DiffusionLibError
from diffusion_lib.train import (
    LOSSES, dist_env, init_distributed, is_main, load_checkpoint, make_config, make_diffusion, make_model,
    save_checkpoint, select_device, diffusion_loss_fn, train,
)
from diffusion_lib.utils import set_threads

#: --dataset names: the shipped digits, or a set read (and if need be downloaded) into --data-root.
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
#: grey (or colour) levels of the data, for the discretised decoder of the bound
_ONLINE_LEVELS = 256


class UsageError(Exception):
    """A command-line argument that cannot work; printed in one line, no traceback."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="digits (shipped, 8x8), or MNIST / Fashion-MNIST (1x28x28) / CIFAR-10 (3x32x32) from "
                        "--data-root, downloaded there if missing (offline: the digits)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder with the data set's files: train-images-idx3-ubyte[.gz] and "
                        "train-labels-idx1-ubyte[.gz], or cifar-10-python.tar.gz (default "
                        "~/.cache/diffusion_book/<dataset>, with _ for -)")
    p.add_argument("--no-download", action="store_true",
                   help="read only the files already in --data-root (missing ones: the digits)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network (for long GPU runs; on the CPU it takes minutes to start)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps of the run (default 4000)")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this many steps (continue later with --resume)")
    p.add_argument("--batch-size", type=int, default=128, help="global batch size, divisible by the process count")
    p.add_argument("--loss", choices=sorted(LOSSES), default="hybrid")
    p.add_argument("--T", type=int, default=1000, help="number of diffusion steps")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="linear", help="noise schedule")
    p.add_argument("--t-sampling", choices=["uniform", "inverse_mix", "loss_aware"], default="uniform",
                   help="how training draws t (see diffusion_lib.core.timesteps)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout rate in the ResNet blocks")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's decoupled weight decay")
    p.add_argument("--augment", choices=["none", "shift"], default="none",
                   help="training augmentation (shift: half of the images moved by one pixel)")
    p.add_argument("--fourier", type=int, nargs="*", default=[],
                   help="Fourier-feature exponents n: add sin/cos(2^n pi x_t) to the input (e.g. 3 4)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup-steps", type=int, default=200, help="linear learning-rate warm-up length")
    p.add_argument("--dim", type=int, default=32, help="U-Net base width")
    p.add_argument("--dim-mults", type=int, nargs="+", default=[1, 2])
    p.add_argument("--groups", type=int, default=8, help="GroupNorm groups (must divide the widths)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="write --out every this many steps")
    p.add_argument("--resume", type=Path, default=None, help="continue from a checkpoint written by this script")
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (rank 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse arguments that cannot work, before anything is trained (raises :class:`UsageError`)."""
    for name in ("batch-size", "T", "dim", "groups", "threads", "checkpoint-every"):
        value = getattr(args, name.replace("-", "_"))
        if value < 1:
            raise UsageError(f"--{name} must be a positive integer, got {value}")
    for name in ("steps", "stop-at"):
        value = getattr(args, name.replace("-", "_"))
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be a positive integer, got {value}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    if not (0.0 <= args.dropout < 1.0):
        raise UsageError(f"--dropout must lie in [0, 1), got {args.dropout}")
    if not (math.isfinite(args.weight_decay) and args.weight_decay >= 0):
        raise UsageError(f"--weight-decay must be a number >= 0, got {args.weight_decay}")
    if args.warmup_steps < 0:
        raise UsageError(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    if args.resume is not None and not args.resume.is_file():
        raise UsageError(f"--resume {args.resume}: no such file; pass a checkpoint written by this script")
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; pass a file name such as {args.out / 'model.pt'}")


def load_dataset(name: str, root: Path | None = None,
                 download: bool = True) -> tuple[torch.Tensor, torch.Tensor, str, int]:
    """``(images (N, C, H, W) in [-1, 1], labels, name loaded, levels)`` of the train split.

    ``name`` other than ``"digits"``: :func:`~diffusion_lib.data.load_image_dataset` (files in
    ``root``, downloaded if missing and ``download``); when they cannot be had, one sentence and
    the digits, whose name and 17 grey levels come back instead.
    """
    if name != "digits":
        images, labels, loaded = load_image_dataset(name, root, "train", download)
        if loaded == name:
            return images, labels, name, _ONLINE_LEVELS
    images, labels = load_digits_split("train")
    return images, labels, "digits", DIGITS_NUM_LEVELS


def check_levels(dim_mults: list[int], shape: tuple[int, ...], dataset: str) -> None:
    """Refuse ``--dim-mults`` whose levels cannot halve the images of ``dataset`` (shape ``(C, H, W)``)."""
    factor = 2 ** (len(dim_mults) - 1)
    if shape[1] % factor or shape[2] % factor:
        raise UsageError(f"--dim-mults {' '.join(map(str, dim_mults))} has {len(dim_mults)} levels, so the image "
                         f"sides must be divisible by {factor}, but {dataset} is {shape[1]}x{shape[2]}; use fewer "
                         "levels")


def main(argv: list[str] | None = None) -> int:
    """Run the script; a user error prints one line (``error: ...``) and returns 1, a bug raises."""
    args = parse_args(argv)
    try:
        check_args(args)
        return run(args)
    except (UsageError, DiffusionLibError, OSError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 1
    finally:
        if tdist.is_available() and tdist.is_initialized():
            tdist.destroy_process_group()


def run(args: argparse.Namespace) -> int:
    """Train and write the checkpoint for validated arguments."""
    set_threads(args.threads)
    env = dist_env()
    device = select_device(args.device, env.local_rank)
    if args.amp and device.type != "cuda":
        raise UsageError(f"--amp (bf16 autocast) needs a CUDA GPU; this run is on {device.type}, drop --amp")
    main_rank = is_main(env)
    if args.compile and device.type == "cpu" and main_rank:
        print("--compile on the CPU: torch.compile takes minutes to start here and was not measured to pay off; "
              "drop --compile for short CPU runs.", flush=True)
    resume = None
    if args.resume is not None:
        resume = load_checkpoint(args.resume)
        if resume["train_state"] is None:
            raise UsageError(f"--resume {args.resume} holds no training state (a weights-only file)")
        config = resume["config"]
        if args.steps is not None and args.steps != config["steps"]:
            raise UsageError(f"--steps {args.steps} differs from the resumed run's {config['steps']} (its learning-rate "
                             "schedule depends on it); leave --steps out")
        dataset = resume["metrics"].get("dataset", config["data"])
        if args.dataset != "digits" and args.dataset != dataset:
            raise UsageError(f"--dataset {args.dataset} differs from the resumed run's {dataset}; leave --dataset out")
        batch = config["batch_size"]
    else:
        dataset, batch = args.dataset, args.batch_size
    if batch % env.world_size:
        raise UsageError(f"the global batch size {batch} is not divisible by the {env.world_size} processes")
    images, labels, loaded, levels = load_dataset(dataset, args.data_root, download=not args.no_download)
    if resume is not None and loaded != dataset:
        raise UsageError(f"--resume {args.resume} continues a run on {dataset}, which could not be loaded; put its "
                         "files in --data-root (or let them download)")
    dataset = loaded
    if resume is None:
        config = make_config(data=dataset, loss=args.loss, T=args.T, steps=args.steps or 4000, batch_size=batch,
                             lr=args.lr, seed=args.seed, warmup_steps=args.warmup_steps, schedule=args.schedule,
                             t_sampling=args.t_sampling, weight_decay=args.weight_decay, augment=args.augment,
                             model={"in_channels": int(images.shape[1]), "dim": args.dim,
                                    "dim_mults": list(args.dim_mults), "groups": args.groups,
                                    **({"fourier_exponents": list(args.fourier)} if args.fourier else {}),
                                    **({"dropout": args.dropout} if args.dropout else {})})
    check_levels(config["model"]["dim_mults"], tuple(images.shape[1:]), dataset)
    init_distributed(env, device)
    torch.manual_seed(config["seed"])
    model = make_model(config)
    if resume is not None:
        model.load_state_dict(resume["model"])
    model.to(device)
    forward = model
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if args.compile:
        forward = torch.compile(forward)
    loss_fn = diffusion_loss_fn(make_diffusion(config), images, None, t_sampling=config["t_sampling"], rank=env.rank,
                                world_size=env.world_size, forward=forward, device=device, num_levels=levels,
                                amp=args.amp, augment=config["augment"])
    total = config["steps"]
    end = total if args.stop_at is None else min(args.stop_at, total)
    step = 0 if resume is None else int(resume["train_state"]["step"])
    state = None if resume is None else resume["train_state"]
    seconds = 0.0 if resume is None else float(resume["metrics"].get("train_seconds") or 0.0)
    if main_rank:
        print(f"{dataset} {tuple(images.shape[1:])}, {env.world_size} process(es) on {device.type}, global batch "
              f"{batch}, steps {step}->{end} of {total}", flush=True)
    bar = None
    if main_rank and not args.no_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=step, desc=f"DDPM on {dataset}")
    result = None
    while step < end:
        stop = min(end, (step // args.checkpoint_every + 1) * args.checkpoint_every)
        done_before = step

        def show(s: int, secs: float, _model, first=done_before) -> None:
            if bar is not None:
                bar.update(1)
                bar.set_postfix(img_s=f"{batch * (s - first) / max(secs, 1e-9):.0f}")

        result = train(model, loss_fn, torch.arange(images.shape[0]), steps=total, batch_size=batch, lr=config["lr"],
                       seed=config["seed"], warmup_steps=config["warmup_steps"], grad_clip=config["grad_clip"],
                       weight_decay=config["weight_decay"],
                       ema_decay=config["ema_decay"], ema_warmup=config["ema_warmup"], progress=False,
                       callback=show, resume=state, stop_at=stop)
        seconds += result.seconds
        state, step = result.state, result.steps
        rate = batch * (step - done_before) / max(result.seconds, 1e-9)
        if main_rank:
            metrics = {"dataset": dataset, "train_seconds": round(seconds, 3), "world_size": env.world_size,
                       "device": device.type, "images_per_second": round(rate, 1), "amp": bool(args.amp)}
            save_checkpoint(args.out, model, config, result, metrics=metrics)
            msg = (f"step {step}/{total}: loss {sum(result.losses[-100:]) / len(result.losses[-100:]):.4f}, "
                   f"{rate:.1f} images/s; wrote {args.out}")
            if bar is not None:
                bar.write(msg)
            else:
                print(msg, flush=True)
        if env.distributed:
            tdist.barrier()
    if bar is not None:
        bar.close()
    if result is None and main_rank:
        print(f"nothing to train: the run is already at step {step} of {end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
