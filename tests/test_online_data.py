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


# ------------------------------------------------------------------ load_image_dataset: MNIST and CIFAR-10
import tarfile  # noqa: E402

from fake_datasets import idx_bytes, serve, sha256, write_cifar_tarball  # noqa: E402

from diffusion_lib.data import load_image_dataset  # noqa: E402


def _mnist_files(folder, n=6, side=28):
    """Tiny MNIST-format train files (gzip) in ``folder``; returns the images and labels they hold."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return images, labels


def _published(monkeypatch, name, folder, algorithm="sha256"):
    """Point the checksum table of ``name`` at the real digests of the tiny files in ``folder``."""
    table = {p.name: (algorithm, sha256(p) if algorithm == "sha256" else online_data._digest(p, algorithm))
             for p in folder.iterdir()}
    monkeypatch.setitem(online_data.CHECKSUMS, name, table)


def test_cifar_tarball_is_read_as_3_channel_images(tmp_path):
    held = write_cifar_tarball(tmp_path / "c" / "cifar-10-python.tar.gz", per_batch=2, n_test=3)
    x, y, name = load_image_dataset("cifar10", tmp_path / "c", download=False)
    train, train_labels = held["train"]
    assert name == "cifar10" and x.shape == (10, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x[0, 0, 0, 0] == -1.0 and x[0, 2, 31, 31] == 1.0  # channel-first planes, scaled to [-1, 1]
    torch.testing.assert_close(x, torch.from_numpy(train).float() / 127.5 - 1.0, rtol=0, atol=0)
    assert y.tolist() == train_labels.tolist()
    x, y, _ = load_image_dataset("cifar10", tmp_path / "c", split="test", download=False)
    assert x.shape == (3, 3, 32, 32) and y.tolist() == held["test"][1].tolist()
    x3, y3, _ = load_image_dataset("cifar10", tmp_path / "c", download=False, limit=3)  # from two batches
    assert torch.equal(x3, load_image_dataset("cifar10", tmp_path / "c", download=False)[0][:3]) and len(y3) == 3
    (tmp_path / "u" / "cifar-10-batches-py").mkdir(parents=True)  # the unpacked folder reads the same
    with tarfile.open(tmp_path / "c" / "cifar-10-python.tar.gz") as tar:
        for member in tar.getmembers():
            (tmp_path / "u" / member.name).write_bytes(tar.extractfile(member).read())
    unpacked, _, _ = load_image_dataset("cifar10", tmp_path / "u", download=False)
    assert torch.equal(unpacked, torch.from_numpy(train).float() / 127.5 - 1.0)


class _Evil:
    def __reduce__(self):
        return (print, ("the pickle ran code",))


def test_a_batch_that_names_other_code_is_refused_without_running_it(tmp_path, capsys):
    import io
    import pickle

    raw = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil()}, protocol=2)
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, 6):
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(InputValueError, match=r"data_batch_1 is not a CIFAR-10 batch.*(__builtin__|builtins)\.print is not allowed"):
        load_image_dataset("cifar10", tmp_path, download=False)
    assert "ran code" not in capsys.readouterr().out


def test_a_damaged_cifar_archive_names_the_file(tmp_path):
    write_cifar_tarball(tmp_path / "a" / "cifar-10-python.tar.gz", skip=("data_batch_3",))
    with pytest.raises(InputValueError, match="has no file cifar-10-batches-py/data_batch_3.*delete it"):
        load_image_dataset("cifar10", tmp_path / "a", download=False)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "cifar-10-python.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(InputValueError, match="cifar-10-python.tar.gz cannot be read"):
        load_image_dataset("cifar10", tmp_path / "b", download=False)


def test_missing_files_are_downloaded_verified_and_cached(tmp_path, monkeypatch):
    images, labels = _mnist_files(tmp_path / "mirror")
    _published(monkeypatch, "mnist", tmp_path / "mirror")
    files = {p.name: p for p in (tmp_path / "mirror").iterdir()}
    first = online_data._SOURCES["mnist"].mirrors[0]
    asked = serve(monkeypatch, files, fail=(first,))  # the first mirror is down: the second one serves
    x, y, name = load_image_dataset("mnist", tmp_path / "cache")
    assert name == "mnist" and x.shape == (6, 1, 28, 28)
    torch.testing.assert_close(x[:, 0], torch.from_numpy(images).float() / 127.5 - 1.0, rtol=0, atol=0)
    assert y.tolist() == labels.tolist()
    assert [u.rsplit("/", 1)[-1] for u in asked] == ["train-images-idx3-ubyte.gz"] * 2 + ["train-labels-idx1-ubyte.gz"] * 2
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(files)  # only the verified files stay
    asked.clear()
    assert torch.equal(load_image_dataset("mnist", tmp_path / "cache")[0], x) and asked == []  # read from the cache


def test_a_download_with_another_checksum_is_not_kept(tmp_path, monkeypatch):
    held = write_cifar_tarball(tmp_path / "mirror" / "cifar-10-python.tar.gz")
    _published(monkeypatch, "cifar10", tmp_path / "mirror", algorithm="md5")
    serve(monkeypatch, {"cifar-10-python.tar.gz": tmp_path / "mirror" / "cifar-10-python.tar.gz"})
    x, _, name = load_image_dataset("cifar10", tmp_path / "ok")  # the real MD5 of the tiny file: kept and read
    assert name == "cifar10" and torch.equal(x, torch.from_numpy(held["train"][0]).float() / 127.5 - 1.0)
    monkeypatch.setitem(online_data.CHECKSUMS, "cifar10", {"cifar-10-python.tar.gz": ("md5", "0" * 32)})
    with pytest.raises(InputValueError) as info:
        load_image_dataset("cifar10", tmp_path / "bad")
    msg = str(info.value)
    assert msg.startswith("cifar-10-python.tar.gz downloaded from https://www.cs.toronto.edu/~kriz/ has MD5 ")
    assert "not the published " + "0" * 32 in msg and "run again" in msg and msg.count(". ") == 0
    assert list((tmp_path / "bad").iterdir()) == []  # nothing kept, nothing half-written


def test_the_real_checksum_table_covers_every_file():
    for name, source in online_data._SOURCES.items():
        for files in source.files.values():
            for fname in files:
                algorithm, digest = online_data.CHECKSUMS[name][fname]
                assert algorithm == "md5" and len(digest) == 32 and int(digest, 16) >= 0
    assert online_data.CHECKSUMS["cifar10"]["cifar-10-python.tar.gz"][1] == "c58f30108f718f92721af3b95e74349a"


def test_offline_or_no_download_falls_back_with_one_sentence(tmp_path, monkeypatch, capsys):
    asked = serve(monkeypatch, {})  # every address unreachable
    x, y, name = load_image_dataset("cifar10", tmp_path / "c", limit=7)
    out = capsys.readouterr().out
    assert name == "digits" and x.shape == (7, 1, 8, 8) and y.shape == (7,)
    assert out.count("\n") == 1 and out.startswith("CIFAR-10 is not in ") and out.strip().count(". ") == 0
    assert "could not be downloaded" in out and "this run uses the book's 8x8 digits instead." in out
    assert len(asked) == 1 and list((tmp_path / "c").iterdir()) == []  # nothing half-written left behind
    asked.clear()
    _, _, name = load_image_dataset("mnist", tmp_path / "m", download=False)
    assert name == "digits" and asked == [] and "downloading is off" in capsys.readouterr().out
    with pytest.raises(InputValueError, match="train-images-idx3-ubyte.gz is not in .* pass download=True"):
        load_image_dataset("mnist", tmp_path / "m", download=False, fallback=False)
    with pytest.raises(ConnectionError, match="MNIST could not be downloaded .*URLError"):
        load_image_dataset("mnist", tmp_path / "m", fallback=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="svhn"), "name must be one of"), (dict(name="fashion_mnist"), "name must be one of"),
    (dict(root=3), "root must be a folder path"), (dict(split="val"), "'train' or 'test'"),
    (dict(download="yes"), "download must be True or False"), (dict(limit=0), "positive int"),
    (dict(fallback=None), "fallback must be True or False"),
])
def test_load_image_dataset_refuses_bad_arguments_before_any_download(monkeypatch, kwargs, match):
    monkeypatch.setattr(online_data, "_open_url", lambda *a: pytest.fail("no download for a bad argument"))
    kwargs = {"name": "mnist", **kwargs}
    with pytest.raises((InputValueError, TypeError), match=match):
        load_image_dataset(**kwargs)
