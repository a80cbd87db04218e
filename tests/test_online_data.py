"""Optional Fashion-MNIST loading: IDX parsing on tiny local files, damaged files, and the offline fallback."""

import gzip
import struct

import numpy as np
import pytest
import torch

from diffusion_lib.data import online as online_data
from diffusion_lib.data.online import load_fashion_mnist
from diffusion_lib.errors import InputValueError


def _idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand: 0, 0, type 0x08 (uint8), rank, big-endian sizes, the bytes."""
    assert array.dtype == np.uint8
    return bytes([0, 0, 8, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def _tiny_fashion(root, n=5):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
    return images, labels


def test_idx_header_is_parsed_by_hand_written_bytes(tmp_path):
    # magic 0x00000803 (uint8, 3 dims), shape 2 x 2 x 3, then 12 bytes
    raw = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(12))
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(raw)
    arr = online_data._read_idx(path)
    assert arr.shape == (2, 2, 3) and arr.dtype == np.uint8 and arr[1, 1, 2] == 11
    (tmp_path / "x.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(online_data._read_idx(tmp_path / "x.gz"), arr)


def test_corrupt_files_are_named_with_what_to_do(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        online_data._read_idx(tmp_path / "bad")
    truncated = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(3)
    (tmp_path / "short").write_bytes(truncated)
    with pytest.raises(ValueError, match="promises 10 bytes"):
        online_data._read_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(InputValueError, match="header is cut short"):
        online_data._read_idx(tmp_path / "header")
    (tmp_path / "fake.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InputValueError, match="fake.gz cannot be read.*delete it"):
        online_data._read_idx(tmp_path / "fake.gz")


def test_local_files_are_loaded_and_scaled_without_download(tmp_path, monkeypatch):
    images, labels = _tiny_fashion(tmp_path / "fm")

    def no_network(*args, **kwargs):
        raise AssertionError("the files are present; nothing should be downloaded")

    monkeypatch.setattr(online_data, "_download", no_network)
    x, y, name = load_fashion_mnist(tmp_path / "fm")
    assert name == "fashion_mnist" and x.shape == (5, 1, 28, 28) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == -1.0 and x[0, 0, 0, 1] == 1.0
    assert torch.allclose(x[:, 0], torch.from_numpy(images).float() / 127.5 - 1)
    assert torch.equal(y, torch.from_numpy(labels).long())
    x3, _, _ = load_fashion_mnist(tmp_path / "fm", limit=np.int64(3))
    assert x3.shape[0] == 3


def test_a_damaged_local_file_is_not_hidden_by_the_fallback(tmp_path, monkeypatch):
    _tiny_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (9).to_bytes(4, "big")))
    monkeypatch.setattr(online_data, "_download", lambda *a, **k: None)
    with pytest.raises(InputValueError, match="train-labels-idx1-ubyte.gz.*promises 9 bytes"):
        load_fashion_mnist(tmp_path / "fm")


def test_offline_falls_back_to_digits_with_one_sentence(tmp_path, monkeypatch, capsys):
    def offline(url, dest, timeout=10.0):
        raise OSError("network is unreachable")

    monkeypatch.setattr(online_data, "_download", offline)
    x, y, name = load_fashion_mnist(tmp_path / "fm")
    out = capsys.readouterr().out.strip()
    assert name == "digits" and x.shape == (1000, 1, 8, 8) and y.shape == (1000,)
    assert out.count("\n") == 0 and "Fashion-MNIST" in out and "8x8 digits" in out
    x, y, name = load_fashion_mnist(tmp_path / "fm", split="test", limit=10)
    assert name == "digits" and x.shape == (10, 1, 8, 8)
    with pytest.raises(ConnectionError, match="unreachable") as info:
        load_fashion_mnist(tmp_path / "m", fallback=False)
    assert str(info.value).count(". ") == 0 and "fallback=True" in str(info.value)  # one sentence, with the fix
    assert not list((tmp_path / "m").glob("*.part"))  # nothing half-written left behind


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(split="val"), "'train' or 'test'"), (dict(limit=0), "positive int"), (dict(limit=-2), "positive int"),
     (dict(limit=2.5), "positive int"), (dict(fallback="yes"), "fallback")],
)
def test_bad_arguments_are_refused_before_any_download(tmp_path, monkeypatch, kwargs, match):
    monkeypatch.setattr(online_data, "_download", lambda *a, **k: pytest.fail("no download for a bad argument"))
    with pytest.raises((InputValueError, TypeError), match=match):
        load_fashion_mnist(tmp_path / "fm", **kwargs)
