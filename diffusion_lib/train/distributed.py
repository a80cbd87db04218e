r"""Training on one GPU or on several processes with torch's own engine (``torch.distributed``, DDP).

The one loop (:func:`diffusion_lib.train.loop.train`) stays as it is; these helpers put it on a
device and on ``N`` processes started by ``torchrun``:

* :func:`dist_env` reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (one process without them);
* :func:`select_device` turns ``"auto" | "cpu" | "cuda" | "mps"`` into a device, or refuses one
  that is not available here with :class:`~diffusion_lib.errors.InputValueError`;
* :func:`init_distributed` starts the process group (gloo on CPU, nccl on CUDA);
* :func:`rank_seed` gives each process its own seed for anything it draws alone;
* :func:`shard_batch` splits one global batch across ranks; the objective
  :func:`diffusion_lib.train.objectives.diffusion_loss_fn` takes ``rank`` and ``world_size``.

Same gradient for any number of processes
-----------------------------------------
Every rank keeps the loop's seeded ``torch.Generator`` in step: each draws the same *global*
batch of ``B`` indices and the same global timesteps, noise and label dropout, then takes its own
``B / N`` rows (:func:`shard_batch`). DDP averages the ranks' gradients, so the mean of ``N``
shard means is the mean over the global batch: ``N`` processes take the same step as one process
with batch ``B`` (up to floating-point summation order), and a run can be resumed on another
number of processes.

EMA and checkpoints: after each step every rank holds identical parameters (DDP all-reduces the
gradients and all ranks apply the same AdamW update), so the EMA that :func:`train` keeps is the
same on every rank; it is kept on every rank (no extra communication) and only rank 0 writes
checkpoints (:func:`is_main`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist

from diffusion_lib._checks import check_choice, check_int, check_real
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = [
    "DEVICES",
    "DistEnv",
    "dist_env",
    "select_device",
    "init_distributed",
    "rank_seed",
    "is_main",
    "shard_batch",
]

#: Names accepted by :func:`select_device`.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: ``rank`` in ``0..world_size-1`` and its ``local_rank`` on the node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def dist_env(environ: Mapping[str, str] | None = None) -> DistEnv:
    """The rank, world size and local rank that ``torchrun`` sets (``os.environ`` by default); one process without them."""
    env = os.environ if environ is None else environ
    if not isinstance(env, Mapping):
        raise InputTypeError(f"environ must be a mapping such as os.environ, got {type(env).__name__}")
    values = {}
    for key, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", None)):
        raw = env.get(key)
        if raw is None:
            values[key] = default
            continue
        try:
            values[key] = int(raw)
        except (TypeError, ValueError):
            raise InputValueError(f"the environment variable {key} must be an integer, got {raw!r}; "
                                  "start the processes with torchrun") from None
    world, rank = values["WORLD_SIZE"], values["RANK"]
    local = rank if values["LOCAL_RANK"] is None else values["LOCAL_RANK"]
    if world < 1:
        raise InputValueError(f"WORLD_SIZE must be >= 1, got {world}")
    if not 0 <= rank < world:
        raise InputValueError(f"RANK must lie in 0..WORLD_SIZE-1 = 0..{world - 1}, got {rank}")
    if local < 0:
        raise InputValueError(f"LOCAL_RANK must be >= 0, got {local}")
    return DistEnv(rank=rank, world_size=world, local_rank=local)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The device called ``name``: ``"auto"`` picks CUDA, then MPS, then the CPU.

    ``local_rank`` chooses the GPU of this process on a multi-GPU node. Raises
    :class:`~diffusion_lib.errors.InputValueError` for an unknown name or a device this machine lacks.
    """
    if not isinstance(name, str):
        raise InputTypeError(f"device must be a string, one of {list(DEVICES)}, got {type(name).__name__}")
    check_choice(name, DEVICES, "device")
    local_rank = check_int(local_rank, "local_rank", minimum=0)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else ("mps" if _mps_available() else "cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise InputValueError("device 'cuda' was asked for, but torch sees no CUDA GPU on this machine; "
                                  "use device 'cpu' (or 'auto')")
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise InputValueError(f"local_rank {local_rank} needs GPU {local_rank}, but this machine has {count}; "
                                  f"start at most {count} processes per node")
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not _mps_available():
            raise InputValueError("device 'mps' was asked for, but this machine has no Apple GPU (MPS); "
                                  "use device 'cpu' (or 'auto')")
        return torch.device("mps")
    return torch.device("cpu")


def init_distributed(env: DistEnv, device: torch.device | str = "cpu", timeout_s: float = 120.0) -> bool:
    """Start the default process group for ``env`` (nccl on CUDA, gloo otherwise); return whether one is running.

    Does nothing for a single process or when a group is already running. The rendezvous
    address comes from ``MASTER_ADDR`` / ``MASTER_PORT``, which ``torchrun`` sets.
    """
    if not isinstance(env, DistEnv):
        raise InputTypeError(f"env must be a DistEnv (from dist_env()), got {type(env).__name__}")
    device = torch.device(device)
    timeout_s = check_real(timeout_s, "timeout_s", minimum=0.0, strict=True)
    if not env.distributed:
        return False
    if not tdist.is_available():
        raise InputValueError("this torch build has no torch.distributed; run a single process")
    if tdist.is_initialized():
        return True
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise InputValueError(f"the environment lacks {missing}; start the processes with torchrun")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    tdist.init_process_group(backend, rank=env.rank, world_size=env.world_size, timeout=timedelta(seconds=timeout_s))
    return True


def rank_seed(seed: int, rank: int) -> int:
    """A seed of this rank's own: ``seed + 1_000_003 * rank`` (rank 0 keeps ``seed``).

    For what a rank draws alone (e.g. dropout masks); the batch, timesteps and noise are drawn
    from the shared seed on every rank (see the module docstring), and the model's initial weights
    come from the shared seed too (DDP also copies rank 0's weights to the others).
    """
    seed = check_int(seed, "seed", minimum=0)
    rank = check_int(rank, "rank", minimum=0)
    return seed + 1_000_003 * rank


def is_main(env: DistEnv) -> bool:
    """True on rank 0, the process that prints, shows the progress bar and writes checkpoints."""
    if not isinstance(env, DistEnv):
        raise InputTypeError(f"env must be a DistEnv (from dist_env()), got {type(env).__name__}")
    return env.rank == 0


def _check_split(batch_size: int, rank: int, world_size: int) -> tuple[int, int, int]:
    world_size = check_int(world_size, "world_size", minimum=1)
    rank = check_int(rank, "rank", minimum=0)
    if rank >= world_size:
        raise InputValueError(f"rank must lie in 0..world_size-1 = 0..{world_size - 1}, got {rank}")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if batch_size % world_size:
        raise InputValueError(f"the global batch size {batch_size} is not divisible by the {world_size} processes; "
                              f"choose a multiple of {world_size}")
    return batch_size, rank, world_size


def shard_batch(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rows ``rank * B/N : (rank + 1) * B/N`` of a global batch of ``B`` rows split across ``N = world_size`` ranks."""
    if not isinstance(batch, torch.Tensor) or batch.ndim < 1:
        raise InputTypeError(f"batch must be a tensor with the examples along dim 0, got {type(batch).__name__}")
    b, rank, world_size = _check_split(batch.shape[0], rank, world_size)
    n = b // world_size
    return batch[rank * n:(rank + 1) * n]
