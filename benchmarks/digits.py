"""Benchmark of the shipped digit models: TEST and TRAIN bounds, memorisation, and DDIM vs DDPM speed and quality.

Usage:
    python benchmarks/digits.py [--checkpoint ddpm_digits.pt] [--num-samples 447] [--quick] [--json PATH]
                                [--bounds-from-checkpoint]

Prints, with measured numbers, the Part III targets:

* the shipped model's negative variational bound on the TEST split and on the first 447 TRAIN
  digits, nats per image (exact sum over all T steps, discretised decoder over the 17 pixel
  levels, for the reverse process that *clips* its prediction of x_0, as the samplers below do;
  ``bound_clip_x0`` in the JSON says so) -- targets: TEST <= 85, TEST - TRAIN <= 8;
* memorisation (``diffusion_lib.eval.memorisation``) of the DDPM samples: the nearest-training-digit
  ratio (target >= 0.95) and the near-copy share (target <= 10 %; held-out TEST digits: 5 %);
* DDIM with 50 steps against DDPM with all T steps, both with x_0 clipping and the same number of
  samples: wall-clock speed-up (one thread) -- target >= 15x -- and Fréchet distance to the TEST
  images in the features of the shipped digit classifier -- target: DDIM within 10% of DDPM. DDIM
  runs with eta = 0 (deterministic) and eta = 1 (stochastic); the eta of the target line is the one
  whose samples are closer to the VALIDATION digits, so the TEST figure is not chosen on TEST;
* for context: DDIM with 10, 20 and 100 steps, respaced DDPM (improved DDPM's sampler of the
  learned-variance model on K < T steps) at the same step counts, and the floor: random sets of
  as many real TRAIN digits against the TEST digits.

Each figure is also passed to ``diffusion_lib.record_metric``. ``--json`` writes them to a file.
The full run costs about (3 T + 600) network calls on ``--num-samples`` images plus 2 T calls on
447 images for the two bounds: about 35 minutes on one core for T = 1000 and the width-32 model.
``--bounds-from-checkpoint`` takes the two exact bounds that ``scripts/train_digits.py`` stored in
the checkpoint (the same call of ``negative_bound``) and saves about 8 minutes; ``--skip-bound``
keeps those of an earlier run of the same checkpoint from the ``--json`` file. ``--quick`` uses 128
samples and a stratified 100-step estimate of the bounds (a smoke test; the numbers are noisier).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from diffusion_lib import record_metric, set_seed
from diffusion_lib.train.checkpoints import load_pretrained
from diffusion_lib.data import load_digits_split
from diffusion_lib.eval.digits import negative_bound, sample_digits
from diffusion_lib.eval.fid import FrechetDigitDistance
from diffusion_lib.eval.memorisation import memorisation_report

TARGET_NATS = 85.0
TARGET_GAP = 8.0
TARGET_NEAR_COPY = 0.10
TARGET_NN_RATIO = 0.95
TARGET_SPEEDUP = 15.0
TARGET_FD_RATIO = 1.10


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="ddpm_digits.pt", help="file in checkpoints/ or a path")
    p.add_argument("--num-samples", type=int, default=447, help="samples per sampler (447 = size of TEST)")
    p.add_argument("--ddim-steps", type=int, nargs="+", default=[10, 20, 50, 100])
    p.add_argument("--etas", type=float, nargs="+", default=[0.0, 1.0], help="DDIM eta values to run")
    p.add_argument("--respaced-steps", type=int, nargs="*", default=[10, 20, 50, 100],
                   help="respaced DDPM step counts (learned-variance models only)")
    p.add_argument("--repeats", type=int, default=3,
                   help="independent sample sets for DDPM and DDIM-50 (the Fréchet distance of one set of 447 "
                        "samples varies by about ±2.5 from set to set; the target compares the means)")
    p.add_argument("--quick", action="store_true", help="128 samples, stratified bound estimate")
    p.add_argument("--skip-bound", action="store_true")
    p.add_argument("--bounds-from-checkpoint", action="store_true",
                   help="take the exact TRAIN and TEST bounds that scripts/train_digits.py stored in the checkpoint "
                        "(the same negative_bound call, seed 0, clipped x0) instead of computing them again")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.num_samples = min(args.num_samples, 128)

    torch.set_num_threads(1)
    set_seed(args.seed)
    model, diffusion, ckpt = load_pretrained(args.checkpoint)
    T = diffusion.T
    print(f"model: {args.checkpoint}  (T = {T}, {ckpt['config']['schedule']} schedule, loss {ckpt['config']['loss']}, "
          f"{sum(q.numel() for q in model.parameters()) / 1e6:.2f} M parameters); torch threads = 1")
    results: dict = {"checkpoint": str(args.checkpoint), "T": T, "num_samples": args.num_samples}
    test = load_digits_split("test")[0]

    results["bound_clip_x0"] = True  # every bound below is that of the clipped reverse process
    old = {}
    if args.skip_bound and args.json is not None and args.json.is_file():
        old = json.loads(args.json.read_text(encoding="utf-8"))
        if old.get("checkpoint") != str(args.checkpoint):
            old = {}
    train = load_digits_split("train")[0]
    stored = ckpt["metrics"]
    if args.bounds_from_checkpoint:
        if stored.get("bound_clip_x0") is not True or "train_nats" not in stored or "test_nats" not in stored:
            print("benchmarks/digits.py: error: --bounds-from-checkpoint needs a checkpoint whose metrics hold exact "
                  "TRAIN and TEST bounds of the clipped reverse process (bound_clip_x0 True)", file=sys.stderr)
            return 1
        for split in ("train", "test"):
            old[f"{split}_nats"], old[f"{split}_nats_se"] = stored[f"{split}_nats"], stored[f"{split}_nats_se"]
            old[f"{split}_bits_per_dim"] = stored[f"{split}_bits_per_dim"]
        old["bound_exact"] = True
    for split, images in (("test", test), ("train", train[: test.shape[0]])):
        if f"{split}_nats" in old:
            keys = [f"{split}_nats", f"{split}_nats_se", f"{split}_bits_per_dim", "bound_exact", f"{split}_bound_seconds"]
            results.update({k: old[k] for k in keys if k in old})
            where = "stored in the checkpoint" if args.bounds_from_checkpoint else f"kept from the previous run in {args.json}"
            print(f"{split.upper()} negative bound ({where}): {old[f'{split}_nats']:.2f} "
                  f"± {old[f'{split}_nats_se']:.2f} nats/image")
            continue
        K = 100 if args.quick else None
        bound = negative_bound(diffusion, model, images, num_timesteps=K, clip_x0=True,
                               generator=torch.Generator().manual_seed(args.seed), progress=True)
        results.update({f"{split}_nats": bound.nats_per_image, f"{split}_nats_se": bound.stderr_nats,
                        f"{split}_bits_per_dim": bound.bits_per_dim, "bound_exact": bound.exact,
                        f"{split}_bound_seconds": bound.seconds})
        print(f"{split.upper()} negative bound (clipped x0): {bound.nats_per_image:.2f} ± {bound.stderr_nats:.2f} nats/image "
              f"= {bound.bits_per_dim:.4f} bits/dim ({'exact' if bound.exact else 'stratified estimate'}, "
              f"{bound.seconds:.0f} s)", flush=True)
        record_metric(f"digits {split} bound (nats/image)", bound.nats_per_image, "nats", chapter="benchmarks/digits")
    gap = results["test_nats"] - results["train_nats"]
    results["gap_nats"] = gap
    print(f"TEST bound {results['test_nats']:.2f} (target <= {TARGET_NATS}: {'PASS' if results['test_nats'] <= TARGET_NATS else 'FAIL'}); "
          f"TEST - TRAIN = {gap:.2f} nats (target <= {TARGET_GAP}: {'PASS' if gap <= TARGET_GAP else 'FAIL'})")

    fd = FrechetDigitDistance()
    ref = fd.statistics(test)
    floor, floor_sd = fd.floor(args.num_samples, ref)
    results["fd_floor_train"], results["fd_floor_train_sd"] = floor, floor_sd
    results["fd_val_vs_test"] = fd(load_digits_split("val")[0], ref)
    print(f"Fréchet distance floor, random sets of {args.num_samples} TRAIN digits vs TEST: {floor:.2f} ± {floor_sd:.2f} "
          f"(all 350 VAL digits vs TEST: {results['fd_val_vs_test']:.2f})")

    val_ref = fd.statistics(load_digits_split("val")[0])

    def run(method: str, steps: int | None, eta: float = 0.0, repeats: int = 1) -> dict:
        seconds, fds, fds_val, mem = [], [], [], []
        for r in range(repeats):
            g = torch.Generator().manual_seed(args.seed + 1 + r)  # set r starts from the same x_T for every sampler
            res = sample_digits(diffusion, model, args.num_samples, method=method, num_steps=steps, eta=eta,
                                clip_x0=True, generator=g, progress=True)
            seconds.append(res.seconds)
            fds.append(fd(res.samples, ref))
            fds_val.append(fd(res.samples, val_ref))
            rep = memorisation_report(res.samples, train, test)
            mem.append((rep.ratio, rep.near_copy_share))
        fd_t, fd_v = torch.tensor(fds, dtype=torch.float64), torch.tensor(fds_val, dtype=torch.float64)
        row = {"method": method, "steps": steps or T, "eta": eta if method == "ddim" else None,
               "seconds": sum(seconds) / repeats, "fd": fd_t.mean().item(), "fd_val": fd_v.mean().item(),
               "repeats": repeats, "fd_sets": fds,
               "fd_se": (fd_t.std() / repeats**0.5).item() if repeats > 1 else None,
               "nn_ratio": sum(m[0] for m in mem) / repeats, "near_copy_share": sum(m[1] for m in mem) / repeats}
        name = method.upper() + ("" if method == "ddpm" else f" eta={eta:g}")
        if method == "ddpm" and steps not in (None, T):
            name = "respaced"
        spread = f" ± {row['fd_se']:.2f} (mean of {repeats} sets)" if repeats > 1 else ""
        print(f"  {name:11s} {row['steps']:5d} steps: {row['seconds']:7.1f} s for {args.num_samples} samples, "
              f"Fréchet distance to TEST {row['fd']:.2f}{spread} (to VAL {row['fd_val']:.2f}); nearest-TRAIN ratio "
              f"{row['nn_ratio']:.3f}, near copies {100 * row['near_copy_share']:.1f}%", flush=True)
        return row

    rows = [run("ddpm", None, repeats=args.repeats)] + [
        run("ddim", k, eta, repeats=args.repeats if k == 50 else 1) for eta in args.etas for k in args.ddim_steps
    ]
    if diffusion.model_var_type == "learned_range":
        rows += [run("ddpm", k) for k in args.respaced_steps if k < T]
    ddpm0 = rows[0]
    results["nn_ratio"], results["near_copy_share"] = ddpm0["nn_ratio"], ddpm0["near_copy_share"]
    held = memorisation_report(load_digits_split("val")[0], train, test)
    results["near_copy_share_heldout"] = held.heldout_share
    print(f"memorisation of the DDPM samples: nearest-TRAIN ratio {ddpm0['nn_ratio']:.3f} (target >= {TARGET_NN_RATIO}: "
          f"{'PASS' if ddpm0['nn_ratio'] >= TARGET_NN_RATIO else 'FAIL'}), near copies {100 * ddpm0['near_copy_share']:.1f}% "
          f"(held-out TEST digits {100 * held.heldout_share:.1f}%; target <= {100 * TARGET_NEAR_COPY:.0f}%: "
          f"{'PASS' if ddpm0['near_copy_share'] <= TARGET_NEAR_COPY else 'FAIL'})")
    results["samplers"] = rows
    ddpm = rows[0]
    for row in rows[1:]:
        row["speedup"] = ddpm["seconds"] / row["seconds"]
        row["fd_ratio"] = row["fd"] / ddpm["fd"]
    if 50 in args.ddim_steps:
        candidates = [r for r in rows if r["method"] == "ddim" and r["steps"] == 50 and r["repeats"] > 1]
        r50 = min(candidates, key=lambda r: r["fd_val"])  # eta chosen on VAL, reported on TEST
        results["ddim50_eta"] = r50["eta"]
        ok_speed = r50["speedup"] >= TARGET_SPEEDUP
        ok_fd = r50["fd_ratio"] <= TARGET_FD_RATIO
        print(f"DDIM 50 (eta = {r50['eta']:g}, chosen by the distance to VAL among "
              f"{[c['eta'] for c in candidates]}) vs DDPM {T}: {r50['speedup']:.1f}x faster (target >= {TARGET_SPEEDUP}: "
              f"{'PASS' if ok_speed else 'FAIL'}); Fréchet distance to TEST {r50['fd']:.2f} vs {ddpm['fd']:.2f} "
              f"= {100 * (r50['fd_ratio'] - 1):+.1f}% (target within +10%: {'PASS' if ok_fd else 'FAIL'})")
        record_metric("DDIM-50 speed-up over DDPM", r50["speedup"], "x", chapter="benchmarks/digits")
        record_metric("DDIM-50 Fréchet distance", r50["fd"], "", chapter="benchmarks/digits")
        record_metric("DDPM Fréchet distance", ddpm["fd"], "", chapter="benchmarks/digits")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    start = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - start:.0f} s")
    sys.exit(code)
