"""Property tests of the distributed helpers: rank environment, device choice, seeds, batch shards, sharded loss.

Bad arguments raise one of the library's errors with a message; good ones give the value computed
here. Everything runs in one process (no process group), so the sharded loss is checked by
averaging the shards' gradients by hand, as DDP would.
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lib.train import (
    DEVICES, DistEnv, dist_env, init_distributed, is_main, make_config, make_diffusion, make_model, rank_seed,
    select_device, shard_batch, diffusion_loss_fn,
)
from tests.property._harness import call, must_refuse

torch.set_num_threads(1)

small = st.one_of(st.integers(-3, 12), st.integers(-3, 12).map(np.int64), st.sampled_from([True, 2.0, "2", None]))


@given(st.dictionaries(st.sampled_from(["RANK", "WORLD_SIZE", "LOCAL_RANK", "OTHER"]),
                       st.one_of(st.integers(-2, 6).map(str), st.sampled_from(["", "x", "1.5"])), max_size=4))
def test_dist_env_reads_torchrun_variables(environ):
    env, err = call(dist_env, environ)
    if err is None:
        assert env.world_size == int(environ.get("WORLD_SIZE", 1)) and env.rank == int(environ.get("RANK", 0))
        assert 0 <= env.rank < env.world_size and env.local_rank == int(environ.get("LOCAL_RANK", env.rank))
        assert env.distributed == (env.world_size > 1) and is_main(env) == (env.rank == 0)
    must_refuse(dist_env, ["RANK"], names="environ")
    must_refuse(is_main, {"rank": 0}, names="DistEnv")


def _valid_rank(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0


@given(st.one_of(st.sampled_from([*DEVICES, "gpu", "CUDA", ""]), st.integers(0, 2)), small)
def test_select_device_gives_an_available_device_or_refuses(name, local_rank):
    device, err = call(select_device, name, local_rank)
    if err is None:
        assert not isinstance(local_rank, bool) and int(local_rank) >= 0
        assert name in DEVICES and isinstance(device, torch.device)
        assert torch.zeros(1, device=device).device.type == device.type  # usable here
        if name == "cpu":
            assert device == torch.device("cpu")
    elif name == "cuda" and not torch.cuda.is_available() and _valid_rank(local_rank):
        assert "no CUDA GPU" in str(err)  # a valid local_rank: the GPU itself is what is missing
    if not torch.cuda.is_available():
        must_refuse(select_device, "cuda", names="no CUDA GPU")


@given(small, small)
def test_rank_seed_differs_per_rank_and_keeps_rank_0(seed, rank):
    value, err = call(rank_seed, seed, rank)
    if err is None:
        assert value == int(seed) + 1_000_003 * int(rank) and (int(rank) != 0 or value == int(seed))
        assert rank_seed(int(seed), int(rank) + 1) != value


@given(st.integers(1, 12), small, small)
def test_shard_batch_splits_into_equal_consecutive_parts(b, rank, world_size):
    batch = torch.arange(b * 2).reshape(b, 2)
    part, err = call(shard_batch, batch, rank, world_size)
    if err is None:
        n = b // int(world_size)
        assert b % int(world_size) == 0 and torch.equal(part, batch[int(rank) * n:(int(rank) + 1) * n])
        assert torch.equal(torch.cat([shard_batch(batch, r, int(world_size)) for r in range(int(world_size))]), batch)
    must_refuse(shard_batch, [1, 2], 0, 1, names="batch")


def test_init_distributed_is_a_no_op_for_one_process_and_checks_its_arguments():
    assert init_distributed(DistEnv(), "cpu") is False
    must_refuse(init_distributed, {"rank": 0}, names="DistEnv")
    must_refuse(init_distributed, DistEnv(), "cpu", 0.0, names="timeout_s")


@settings(max_examples=8, deadline=None)
@given(st.sampled_from([1, 2, 4]), st.sampled_from(["hybrid", "simple"]))
def test_mean_of_shard_gradients_is_the_global_gradient(world_size, loss):
    config = make_config(T=25, steps=1, batch_size=4, loss=loss, model={"dim": 8, "groups": 4})
    torch.manual_seed(0)
    model = make_model(config)
    images = torch.rand(10, 1, 8, 8) * 2 - 1
    idx = torch.tensor([3, 1, 4, 1])

    def grads(rank: int, n: int) -> list[torch.Tensor]:
        fn = diffusion_loss_fn(make_diffusion(config), images, rank=rank, world_size=n, num_levels=17)
        model.zero_grad()
        fn(model, idx, torch.Generator().manual_seed(7)).backward()
        return [p.grad.clone() for p in model.parameters()]

    whole = grads(0, 1)
    parts = [grads(r, world_size) for r in range(world_size)]
    for i, g in enumerate(whole):
        torch.testing.assert_close(sum(p[i] for p in parts) / world_size, g, rtol=1e-4, atol=1e-6)
    diffusion = make_diffusion(config)
    must_refuse(diffusion_loss_fn, diffusion, images, rank=2, world_size=2, names="rank")
    must_refuse(diffusion_loss_fn, diffusion, images, amp=True, device="cpu", names="CUDA")
    must_refuse(diffusion_loss_fn, "d", images, names="diffusion")
    bad = diffusion_loss_fn(diffusion, images, world_size=3, rank=0)
    must_refuse(bad, model, idx, torch.Generator(), names="divisible")
