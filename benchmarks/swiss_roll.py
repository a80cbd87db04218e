"""Swiss-roll benchmark of Part II: sample quality (W2^2) against training seconds.

For every model of the Part II chapters and every time budget (default 15, 30 and 60 s) this
script measures the speed of a training step on this machine, trains a fresh model for the number
of steps that fits the budget (with the chapter's hyperparameters and learning-rate schedule, which
decays over the whole run), samples 8,000 points and reports

    W2^2 = exact optimal-transport cost (ot.emd2, squared Euclidean, uniform weights)
           between 2,000 generated and 2,000 fresh Swiss-roll points, mean ± s.e. over 4 blocks,

next to the floor (two independent Swiss-roll draws) and the ceiling (N(0, I) against the roll).
It also times the fixed step counts that the chapters use. Training runs on one thread
(``torch.set_num_threads(1)``), as in the chapters; other processes on the machine slow it down.

Usage::

    python benchmarks/swiss_roll.py                       # all models, budgets 15 30 60 (about 10 min)
    python benchmarks/swiss_roll.py --budgets 15 --models sohl2015 ddpm_simple
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffusion_lib import set_seed
from diffusion_lib.data import swiss_roll
from diffusion_lib.core.diffusion import GaussianDiffusion
from diffusion_lib.eval.metrics import w2_floor, w2_gaussian_ceiling, w2_to_reference
from diffusion_lib.models import PerTimestepMLP, TimeMLP
from diffusion_lib.core.schedules import NoiseSchedule
from diffusion_lib.topics.sohl2015 import Sohl2015Diffusion
from diffusion_lib.train.loop import estimate_steps, train


def reference(n: int, seed: int) -> torch.Tensor:
    return swiss_roll(n, seed=seed)


@dataclass
class Config:
    name: str
    make_model: Callable[[], torch.nn.Module]
    loss_fn: Callable
    sample: Callable[[torch.nn.Module, int, torch.Generator], torch.Tensor]
    batch_size: int
    lr: float
    chapter_steps: int


def configs() -> dict[str, Config]:
    sohl = Sohl2015Diffusion(NoiseSchedule.from_name("linear", 40, beta_start=1e-3, beta_end=0.2))
    sched = NoiseSchedule.from_name("linear", 100)
    simple = GaussianDiffusion(sched, "eps", "fixed_small", "l2")
    vlb = GaussianDiffusion(sched, "eps", "fixed_small", "kl")

    def loss_for(d: GaussianDiffusion):
        return lambda m, x0, g: d.training_losses(m, x0, generator=g, decoder="gaussian")["loss"].mean()

    def sampler_for(d: GaussianDiffusion):
        return lambda m, n, g: d.p_sample_loop(m, (n, 2), generator=g)

    return {
        "sohl2015": Config(
            "2015: 40 per-timestep heads, bound (T=40)",
            lambda: PerTimestepMLP(40, 2, out_dim=4, hidden=256, trunk_layers=3),
            sohl.loss, lambda m, n, g: sohl.sample(m, n, generator=g), 512, 3e-3, 2000),
        "ddpm_simple": Config(
            "DDPM: shared TimeMLP, L_simple (T=100)",
            lambda: TimeMLP(100, 2, hidden=128, n_blocks=3), loss_for(simple), sampler_for(simple), 256, 3e-3, 3000),
        "ddpm_vlb": Config(
            "DDPM: shared TimeMLP, L_vlb (T=100)",
            lambda: TimeMLP(100, 2, hidden=128, n_blocks=3), loss_for(vlb), sampler_for(vlb), 256, 3e-3, 3000),
        "ddpm_heads": Config(
            "DDPM: 100 per-timestep heads, L_simple",
            lambda: PerTimestepMLP(100, 2, hidden=128, trunk_layers=3), loss_for(simple), sampler_for(simple),
            256, 3e-3, 3000),
    }


def run(cfg: Config, steps: int) -> tuple[float, str]:
    set_seed(0)
    model = cfg.make_model()
    data = swiss_roll(100_000, seed=1)
    r = train(model, cfg.loss_fn, data, steps=steps, batch_size=cfg.batch_size, lr=cfg.lr, warmup_steps=100,
              seed=0, progress=False)
    with torch.no_grad():
        x = cfg.sample(model, 8000, torch.Generator().manual_seed(1))
    return r.seconds, str(w2_to_reference(x, reference))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[15.0, 30.0, 60.0], help="training seconds")
    ap.add_argument("--models", nargs="+", default=list(configs()), choices=list(configs()))
    ap.add_argument("--no-chapter", action="store_true", help="skip timing the chapters' fixed step counts")
    args = ap.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    floor = w2_floor(reference, repeats=20)
    ceiling = w2_gaussian_ceiling(reference, repeats=4)
    print(f"floor   (two Swiss-roll draws, 20 pairs): W2^2 = {floor}")
    print(f"ceiling (N(0, I) vs Swiss roll, 4 pairs):  W2^2 = {ceiling}   [{time.perf_counter() - t0:.0f} s]")
    print()
    print(f"{'model':45s} {'budget':>7s} {'steps':>6s} {'train s':>8s}  W2^2 (mean ± s.e.)   x floor")
    for key in args.models:
        cfg = configs()[key]
        rows = []
        if not args.no_chapter:
            rows.append(("chapter", cfg.chapter_steps))
        for b in args.budgets:
            set_seed(0)
            steps, _ = estimate_steps(cfg.make_model(), cfg.loss_fn, swiss_roll(10_000, seed=1), b,
                                      batch_size=cfg.batch_size, probe_steps=40)
            rows.append((f"{b:g} s", steps))
        for label, steps in rows:
            seconds, score = run(cfg, steps)
            mean = float(score.split(" ")[0])
            print(f"{cfg.name:45s} {label:>7s} {steps:6d} {seconds:8.1f}  {score:20s} {mean / floor.mean:5.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
