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

from diffusion_lib.data import online as online_data
from diffusion_lib.errors import InputValueError
from diffusion_lib.train import (
    DistEnv, dist_env, load_checkpoint, make_config, select_device, shard_batch, train_run,
)

from fake_datasets import serve, write_cifar_tarball

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train.py"
TINY = ["--T", "25", "--steps", "3", "--batch-size", "4", "--dim", "8", "--groups", "4", "--no-progress",
        "--lr", "0.01", "--warmup-steps", "0"]
#: the largest weight difference between process counts: 1/100 of the distance three steps move a weight
TOL = 1e-4


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
    assert _max_diff(one["model"], init) > 1e-2  # training moved the weights (Adam, lr 0.01, 3 steps) ...
    # ... and identically with 2 processes, up to rounding: the all-reduce sums the shards' gradients
    # in another order, and Adam divides each gradient by its own root mean square, so a weight whose
    # gradient is tiny can move by a rounding-sized gradient's full step (seen: 3.4e-5 on one CPU)
    assert _max_diff(one["model"], two["model"]) < TOL
    assert _max_diff(one["ema"], two["ema"]) < TOL
    # the logged loss is the global batch's mean on every process count
    np.testing.assert_allclose(one["train_state"]["losses"], two["train_state"]["losses"], rtol=1e-5, atol=1e-6)


def test_resume_on_another_number_of_processes(runs):
    assert runs["two_at_2"]["train_state"]["step"] == 2
    resumed, one = runs["resumed"], runs["one"]
    assert resumed["train_state"]["step"] == 3 and resumed["metrics"]["world_size"] == 1
    assert _max_diff(runs["two_at_2"]["model"], one["model"]) > 1e-3  # the third step still changed something
    assert _max_diff(resumed["model"], one["model"]) < TOL
    assert _max_diff(resumed["ema"], one["ema"]) < TOL


def test_one_process_reproduces_train_run_bit_for_bit(runs):
    """With one process the entry point is the library's train_run (same draws, same order)."""
    model, _ = train_run(runs["one"]["config"], progress=False)
    assert _max_diff(runs["one"]["model"], model.state_dict()) == 0.0


def test_recipe_flags_reach_the_config_and_train_as_train_run(tmp_path):
    """The shipped digits recipe's flags: the file's config says them, and the run is train_run's on that config."""
    script = _script()
    out = tmp_path / "recipe.pt"
    assert script.main([*TINY, "--schedule", "cosine", "--t-sampling", "inverse_mix", "--dropout", "0.1",
                        "--weight-decay", "0.01", "--augment", "shift", "--fourier", "3", "4", "--out", str(out)]) == 0
    ckpt = load_checkpoint(out)
    config = ckpt["config"]
    assert (config["schedule"], config["t_sampling"], config["augment"], config["weight_decay"]) == (
        "cosine", "inverse_mix", "shift", 0.01)
    assert config["model"]["dropout"] == 0.1 and config["model"]["fourier_exponents"] == [3, 4]
    model, _ = train_run(config, progress=False)
    assert _max_diff(ckpt["model"], model.state_dict()) == 0.0
    assert script.main([*TINY, "--out", str(tmp_path / "plain.pt")]) == 0
    assert _max_diff(load_checkpoint(tmp_path / "plain.pt")["model"], ckpt["model"]) > 1e-3  # the flags changed the run


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
    assert script.main([*TINY, "--dim-mults", "1", "2", "2", "2", "2", "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train.py: error: --dim-mults 1 2 2 2 2 has 5 levels")
    assert "divisible by 16, but digits is 8x8" in err
    assert script.main([*TINY, "--dropout", "1.5", "--out", str(tmp_path / "x.pt")]) == 1
    assert capsys.readouterr().err == "train.py: error: --dropout must lie in [0, 1), got 1.5\n"
    assert not (tmp_path / "x.pt").exists()


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_format_data_set_is_read_and_trained_on(tmp_path, capsys, monkeypatch):
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
    # no files there and no network: one sentence, then the digits
    asked = serve(monkeypatch, {})
    capsys.readouterr()
    x, _, name, levels = script.load_dataset("fashion-mnist", tmp_path / "empty")
    assert name == "digits" and levels == 17 and x.shape[1:] == (1, 8, 8) and len(asked) == 1
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Fashion-MNIST is not in" in out and "could not be downloaded" in out
    assert "8x8 digits" in out


def _loads_as(path: Path, data: str, channels: int, side: int) -> None:
    """The file reads back with both loaders, names its data, and its U-Net takes ``channels`` x side x side."""
    from diffusion_lib.train import load_pretrained

    ckpt = load_checkpoint(path)
    assert ckpt["config"]["data"] == data and ckpt["metrics"]["dataset"] == data
    assert ckpt["config"]["model"]["in_channels"] == channels and ckpt["train_state"]["step"] == 2
    model, diffusion, _ = load_pretrained(path)
    assert model.in_channels == channels and diffusion.T == 25
    with torch.no_grad():
        out = model(torch.zeros(2, channels, side, side), torch.tensor([1, 25]))
    assert out.shape == (2, 2 * channels, side, side) and bool(torch.isfinite(out).all())  # mean and variance parts
    # the sampler the sampling chapter calls draws images of the file's size
    from diffusion_lib.eval import sample_digits

    drawn = sample_digits(diffusion, model, 2, method="ddim", num_steps=3, shape=(channels, side, side),
                          generator=torch.Generator().manual_seed(0))
    assert drawn.samples.shape == (2, channels, side, side) and drawn.network_calls == 3


def test_script_trains_on_28x28_mnist_files_and_on_a_downloaded_cifar10(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(2)
    (tmp_path / "mnist").mkdir()
    _write_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz", rng.integers(0, 256, size=(6, 28, 28)))
    _write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.arange(6) % 10)
    script = _script()
    args = [*TINY, "--steps", "2"]
    assert script.main([*args, "--dataset", "mnist", "--data-root", str(tmp_path / "mnist"), "--dim-mults", "1", "2",
                        "2", "--no-download", "--out", str(tmp_path / "mnist.pt")]) == 0
    _loads_as(tmp_path / "mnist.pt", "mnist", 1, 28)
    assert "mnist (1, 28, 28)" in capsys.readouterr().out

    # CIFAR-10 is not in --data-root: it is "downloaded" (local bytes), checked against the table, kept, trained on
    tarball = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    write_cifar_tarball(tarball)
    monkeypatch.setitem(online_data.CHECKSUMS, "cifar10",
                        {tarball.name: ("md5", online_data._digest(tarball, "md5"))})
    asked = serve(monkeypatch, {tarball.name: tarball})
    assert script.main([*args, "--dataset", "cifar10", "--data-root", str(tmp_path / "cache"),
                        "--out", str(tmp_path / "cifar.pt")]) == 0
    assert asked == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert (tmp_path / "cache" / tarball.name).read_bytes() == tarball.read_bytes()
    _loads_as(tmp_path / "cifar.pt", "cifar10", 3, 32)
    assert "cifar10 (3, 32, 32)" in capsys.readouterr().out

    # resuming the CIFAR-10 run where its data cannot be had is refused, not continued on the digits
    assert script.main(["--resume", str(tmp_path / "cifar.pt"), "--data-root", str(tmp_path / "none"),
                        "--no-download", "--out", str(tmp_path / "more.pt"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "continues a run on cifar10, which could not be loaded" in err and not (tmp_path / "more.pt").exists()


def test_compile_on_the_cpu_warns_in_one_line(tmp_path, monkeypatch, capsys):
    script = _script()
    monkeypatch.setattr(script.torch, "compile", lambda fn: fn)  # the warning is the point, not compiling
    assert script.main([*TINY, "--steps", "1", "--compile", "--device", "cpu", "--out", str(tmp_path / "c.pt")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "--compile" in line]
    assert lines == ["--compile on the CPU: torch.compile takes minutes to start here and was not measured to pay "
                     "off; drop --compile for short CPU runs."]
