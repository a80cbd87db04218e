"""Training on several processes (torch.distributed, gloo on the CPU) gives the one-process model.

Runs ``scripts/train.py`` under ``torchrun`` with two processes and in this process with one,
on a tiny U-Net, and compares the weights; checks resuming on another number of processes, the
device choice and reading an mnist-format (IDX) data set.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_lib.errors import InputValueError
from diffusion_lib.train import (
    DistEnv, dist_env, load_checkpoint, make_config, select_device, shard_batch, train_run,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train.py"
TINY = ["--T", "25", "--steps", "3", "--batch-size", "4", "--dim", "8", "--groups", "4", "--no-progress",
        "--lr", "0.01", "--warmup-steps", "0"]


def _script():
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc: int, args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(SCRIPT), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, 3 steps; two processes, 3 steps; two processes, 2 steps, resumed by one for the 3rd."""
    tmp = tmp_path_factory.mktemp("ddp")
    script = _script()
    assert script.main([*TINY, "--out", str(tmp / "one.pt")]) == 0
    _torchrun(2, [*TINY, "--out", str(tmp / "two.pt")])
    _torchrun(2, [*TINY, "--stop-at", "2", "--out", str(tmp / "two_at_2.pt")])
    assert script.main(["--resume", str(tmp / "two_at_2.pt"), "--out", str(tmp / "resumed.pt"), "--no-progress"]) == 0
    return {name: load_checkpoint(tmp / f"{name}.pt") for name in ("one", "two", "two_at_2", "resumed")}


def test_two_processes_train_the_one_process_model(runs):
    one, two = runs["one"], runs["two"]
    assert one["train_state"]["step"] == two["train_state"]["step"] == 3
    assert two["metrics"]["world_size"] == 2 and one["metrics"]["world_size"] == 1
    torch.manual_seed(0)
    from diffusion_lib.train import make_model

    init = make_model(one["config"]).state_dict()
    assert _max_diff(one["model"], init) > 1e-3  # training moved the weights ...
    assert _max_diff(one["model"], two["model"]) < 1e-5  # ... identically with 2 processes
    assert _max_diff(one["ema"], two["ema"]) < 1e-5
    # the logged loss is the global batch's mean on every process count
    np.testing.assert_allclose(one["train_state"]["losses"], two["train_state"]["losses"], rtol=1e-5, atol=1e-6)


def test_resume_on_another_number_of_processes(runs):
    assert runs["two_at_2"]["train_state"]["step"] == 2
    resumed, one = runs["resumed"], runs["one"]
    assert resumed["train_state"]["step"] == 3 and resumed["metrics"]["world_size"] == 1
    assert _max_diff(runs["two_at_2"]["model"], one["model"]) > 1e-3  # the third step still changed something
    assert _max_diff(resumed["model"], one["model"]) < 1e-5
    assert _max_diff(resumed["ema"], one["ema"]) < 1e-5


def test_one_process_reproduces_train_run_bit_for_bit(runs):
    """With one process the entry point is the library's train_run (same draws, same order)."""
    model, _ = train_run(runs["one"]["config"], progress=False)
    assert _max_diff(runs["one"]["model"], model.state_dict()) == 0.0


def test_shard_batch_takes_equal_consecutive_slices():
    batch = torch.arange(12).reshape(6, 2)
    parts = [shard_batch(batch, r, 3) for r in range(3)]
    assert torch.equal(torch.cat(parts), batch) and all(p.shape == (2, 2) for p in parts)
    with pytest.raises(InputValueError, match="not divisible by the 4 processes"):
        shard_batch(batch, 0, 4)


def test_device_selection():
    assert select_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputValueError, match="no CUDA GPU"):
            select_device("cuda")
        assert select_device("auto").type in ("cpu", "mps")
    with pytest.raises(InputValueError, match="unknown device 'gpu'"):
        select_device("gpu")
    assert dist_env({}) == DistEnv(0, 1, 0)
    assert dist_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == DistEnv(3, 4, 1)
    with pytest.raises(InputValueError, match="RANK must lie in"):
        dist_env({"RANK": "4", "WORLD_SIZE": "4"})


def test_entry_point_refuses_bad_flags_in_one_line(tmp_path, capsys):
    script = _script()
    assert script.main([*TINY, "--amp", "--device", "cpu", "--out", str(tmp_path / "x.pt")]) == 1
    assert "train.py: error: --amp (bf16 autocast) needs a CUDA GPU" in capsys.readouterr().err
    assert script.main([*TINY, "--dataset", "cifar10", "--out", str(tmp_path / "x.pt")]) == 1
    assert "cifar10 is not supported yet" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_format_data_set_is_read_and_trained_on(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(8, 12, 12), dtype=np.uint8)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    labels = np.arange(8, dtype=np.uint8) % 10
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", pixels)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    script = _script()
    x, y, name, levels = script.load_dataset("mnist", tmp_path)
    assert name == "mnist" and levels == 256 and x.shape == (8, 1, 12, 12) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 1] == 1.0
    torch.testing.assert_close(x[:, 0], torch.from_numpy(pixels.astype(np.float32)) / 127.5 - 1.0)
    assert y.tolist() == labels.tolist()
    out = tmp_path / "mnist.pt"
    assert script.main([*TINY, "--steps", "1", "--dataset", "mnist", "--data-root", str(tmp_path), "--out", str(out)]) == 0
    assert load_checkpoint(out)["metrics"]["dataset"] == "mnist"
    # no files there: one sentence, then the digits
    x, _, name, levels = script.load_dataset("fashion-mnist", tmp_path / "empty")
    assert name == "digits" and levels == 17 and x.shape[1:] == (1, 8, 8)
    assert "fashion-mnist is not available offline" in capsys.readouterr().out
