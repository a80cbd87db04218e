"""The bad calls that the "no silent wrong answers" review reported, each now refused clearly.

Every case below once returned a silently wrong value, a raw torch/Python error or unsafe advice.
Each must now raise one of the library's own errors with a message; ``python -m
tests.property.test_reported_cases`` prints what every case returns today.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_lib.core import GaussianDiffusion, NoiseSchedule, discretized_gaussian_log_likelihood, mean_flat, simple_loss
from diffusion_lib.errors import DiffusionLibError
from diffusion_lib.eval import frechet_distance, stratified_bound_timesteps
from diffusion_lib.models import TimeMLP
from diffusion_lib.topics import (
    VAE, ClassifierFreeGuidance, GaussianDataDenoiser, Sohl2015Diffusion, annealed_langevin, elbo_denoising_terms,
    mvn_log_prob, score_from_eps_model,
)
from diffusion_lib.train import load_checkpoint, make_config, save_checkpoint, train
from diffusion_lib.models.unet import UNet

torch.set_num_threads(1)
S = NoiseSchedule.from_name("linear", 40)
D = GaussianDiffusion(S)


def _eps_model(x, t, **kw):
    return torch.zeros_like(x)


def _damaged(content: bytes):
    def load():
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "damaged.pt"
            p.write_bytes(content)
            return load_checkpoint(p)
    return load


def _saved_with_numpy_seed():
    with tempfile.TemporaryDirectory() as d:
        config = make_config(T=40, steps=1, batch_size=2, seed=np.int64(1), model={"dim": 8, "groups": 4})
        model = UNet(**config["model"])
        return load_checkpoint(save_checkpoint(Path(d) / "c.pt", model, config))["config"]["seed"]


def _inf_gradient_with_a_finite_loss():
    model = torch.nn.Linear(2, 1)
    model.weight.register_hook(lambda grad: grad * float("inf"))  # the loss stays finite, its gradient does not
    return train(model, lambda m, batch, generator: m(batch).pow(2).mean(), torch.randn(16, 2), steps=2,
                 batch_size=4, progress=False)


CASES = {
    "elbo_denoising_terms with a (B, 1) mean for (B, 2) data": lambda: elbo_denoising_terms(
        S, lambda x, t: x[:, :1], torch.randn(4, 2)),
    "mvn_log_prob with a non-symmetric covariance": lambda: mvn_log_prob(
        torch.zeros(2), torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])),
    "annealed_langevin with 0 in the timesteps": lambda: annealed_langevin(
        lambda x, t: -x, torch.zeros(3, 2), [0], [0.1], 2),
    "annealed_langevin with -2 in the timesteps": lambda: annealed_langevin(
        lambda x, t: -x, torch.zeros(3, 2), [-2], [0.1], 2),
    "score_from_eps_model(...)(x, t=-1)": lambda: score_from_eps_model(_eps_model, S)(
        torch.zeros(3, 2), torch.full((3,), -1)),
    "Sohl2015Diffusion.q_sample(t=-1)": lambda: Sohl2015Diffusion(S).q_sample(torch.zeros(3, 2), torch.full((3,), -1), torch.zeros(3, 2)),
    "GaussianDataDenoiser.mean(t=-1)": lambda: GaussianDataDenoiser(S, 0.0, 1.0).mean(torch.zeros(3, 2), -1),
    "frechet_distance with a covariance that is not PSD": lambda: frechet_distance(
        np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2)),
    "q_sample on an empty batch with t = 99": lambda: D.q_sample(torch.zeros(0, 2), 99),
    "p_sample_loop(shape=(2.5, 2))": lambda: D.p_sample_loop(_eps_model, (2.5, 2)),
    "ddim_step(eta=nan)": lambda: D.ddim_step(_eps_model, torch.zeros(2, 2), torch.full((2,), 5),
                                              torch.full((2,), 4), eta=float("nan")),
    "GaussianDiffusion(vb_weight=nan)": lambda: GaussianDiffusion(S, vb_weight=float("nan")),
    "make_config(schedule='linearr')": lambda: make_config(schedule="linearr"),
    "make_config(T=0)": lambda: make_config(T=0),
    "make_config(T='1000')": lambda: make_config(T="1000"),
    "make_config(steps=-5)": lambda: make_config(steps=-5),
    "make_config(lr=-1)": lambda: make_config(lr=-1),
    "make_config(model={'width': 8})": lambda: make_config(model={"width": 8}),
    "make_config(model_mean_type='v')": lambda: make_config(model_mean_type="v"),
    "TimeMLP on float64 input": lambda: TimeMLP(T=40, data_dim=2)(torch.zeros(3, 2, dtype=torch.float64),
                                                                  torch.ones(3, dtype=torch.long)),
    "VAE on float64 input": lambda: VAE(4, 2, 8).elbo_terms(torch.zeros(3, 4, dtype=torch.float64)),
    "a truncated checkpoint": _damaged(b"PK\x03\x04 truncated"),
    "an empty checkpoint": _damaged(b""),
    "a random-bytes checkpoint": _damaged(bytes(range(256)) * 4),
    "train with an inf gradient (finite loss)": _inf_gradient_with_a_finite_loss,
}
#: calls the review reported that are correct now rather than refused (a valid input with an answer)
ANSWERED = {
    "discretized_gaussian_log_likelihood(log_scale=-50) at a bin centre": lambda: discretized_gaussian_log_likelihood(
        torch.full((1, 1), 1 / 255), torch.full((1, 1), 1 / 255), torch.full((1, 1), -50.0)),
    "stratified_bound_timesteps(np.int64(10), 3, 2)": lambda: stratified_bound_timesteps(np.int64(10), 3, 2),
    "mean_flat on an empty batch": lambda: mean_flat(torch.zeros(0, 3)),
    "simple_loss on an empty batch": lambda: simple_loss(torch.zeros(0, 3), torch.zeros(0, 3)),
    "ClassifierFreeGuidance(...)(x, 3, y) with a Python int t": lambda: ClassifierFreeGuidance(
        lambda x, t, y: torch.zeros_like(x), 2.0, null_label=10)(torch.zeros(2, 2), 3, torch.zeros(2, dtype=torch.long)),

    "a config with seed=np.int64(1) saved and loaded back": _saved_with_numpy_seed,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reported_case_is_refused_with_a_message(name):
    with pytest.raises(DiffusionLibError) as info:
        CASES[name]()
    assert len(str(info.value).split()) >= 6, str(info.value)
    assert "weights_only=False" not in str(info.value)


def test_the_valid_reported_cases_give_the_right_answer():
    # a bin of width 2/255 around the mean under a tiny scale holds all the mass: log-likelihood 0, not NaN
    assert ANSWERED["discretized_gaussian_log_likelihood(log_scale=-50) at a bin centre"]().item() == pytest.approx(0, abs=1e-6)
    t, weights = ANSWERED["stratified_bound_timesteps(np.int64(10), 3, 2)"]()
    assert t.shape == (2, 2) and t.min() >= 2 and t.max() <= 10 and weights.sum() == 9  # T = 10 read as an int
    for name in ("mean_flat on an empty batch", "simple_loss on an empty batch"):
        assert ANSWERED[name]().shape == (0,)  # an empty batch gives an empty per-example result
    guided = ANSWERED["ClassifierFreeGuidance(...)(x, 3, y) with a Python int t"]()
    assert guided.shape == (2, 2) and torch.all(guided == 0)  # an int t is one timestep for the whole batch
    seed = ANSWERED["a config with seed=np.int64(1) saved and loaded back"]()
    assert seed == 1 and type(seed) is int


if __name__ == "__main__":
    for table in (CASES, ANSWERED):
        for name, case in table.items():
            try:
                out = case()
                print(f"- {name}: returns {out if not isinstance(out, torch.Tensor) else out.tolist()}")
            except DiffusionLibError as err:
                print(f"- {name}: {type(err).__name__}: {err}")
            except Exception as err:  # a raw error: the test above fails on it
                print(f"- {name}: RAW {type(err).__name__}: {err}")
