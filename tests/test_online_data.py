"""Optional MNIST / Fashion-MNIST loading: IDX parsing on tiny local files, and the offline fallback."""

import gzip

import numpy as np
import pytest
import torch

from diffusion_lib.data import online as online_data
from diffusion_lib.data.online import load_fashion_mnist, load_mnist, read_idx, write_idx


def _tiny_mnist(root, n=5):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    write_idx(root / "train-images-idx3-ubyte.gz", images)
    write_idx(root / "train-labels-idx1-ubyte.gz", labels)
    return images, labels


def test_idx_header_is_parsed_by_hand_written_bytes(tmp_path):
    # magic 0x00000803 (uint8, 3 dims), shape 2 x 2 x 3, then 12 bytes
    raw = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(12))
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(raw)
    arr = read_idx(path)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.uint8 and arr[1, 1, 2] == 11
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx(tmp_path / "x.gz"), arr)


def test_idx_round_trip_and_corrupt_files(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(4, 6)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a.idx", a)), a)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    truncated = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(3)
    (tmp_path / "short").write_bytes(truncated)
    with pytest.raises(ValueError, match="promises 10 bytes"):
        read_idx(tmp_path / "short")


def test_local_files_are_loaded_and_scaled_without_download(tmp_path, monkeypatch):
    images, labels = _tiny_mnist(tmp_path / "mnist")

    def no_network(*args, **kwargs):
        raise AssertionError("the files are present; nothing should be downloaded")

    monkeypatch.setattr(online_data, "download", no_network)
    x, y, name = load_mnist(tmp_path / "mnist")
    assert name == "mnist" and x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 1] == 1.0
    assert torch.allclose(x[:, 0], torch.from_numpy(images).float() / 127.5 - 1)
    assert torch.equal(y, torch.from_numpy(labels).long())
    x3, _, _ = load_mnist(tmp_path / "mnist", limit=3)
    assert x3.shape[0] == 3


def test_offline_falls_back_to_digits_with_one_sentence(tmp_path, monkeypatch, capsys):
    def offline(url, dest, timeout=10.0):
        raise OSError("network is unreachable")

    monkeypatch.setattr(online_data, "download", offline)
    x, y, name = load_fashion_mnist(tmp_path / "fm")
    out = capsys.readouterr().out.strip()
    assert name == "digits" and x.shape == (1000, 1, 8, 8) and y.shape == (1000,)
    assert out.count("\n") == 0 and "Fashion-MNIST" in out and "8x8 digits" in out
    with pytest.raises(ConnectionError, match="unreachable"):
        load_mnist(tmp_path / "m", fallback=False)
    assert not list((tmp_path / "m").glob("*.part"))  # nothing half-written left behind
