"""Tiny stand-ins for the online data sets, written by the tests themselves (no network).

``idx_bytes`` writes an MNIST-format (IDX) file by hand, ``write_cifar_tarball`` a
``cifar-10-python.tar.gz`` laid out like the real one (a ``cifar-10-batches-py`` folder of
pickled dicts with a ``uint8`` ``data`` array and a list of ``labels``), and ``serve`` replaces the
library's URL opener so that a "download" returns local bytes and records what was asked for.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np

from diffusion_lib.data import online as online_data


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file: 0, 0, type 0x08 (uint8), rank, big-endian sizes, then the bytes."""
    assert array.dtype == np.uint8
    return bytes([0, 0, 8, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape) + array.tobytes()


def cifar_batch(images: np.ndarray, labels: np.ndarray, protocol: int = 2) -> bytes:
    """One pickled batch: ``images`` (n, 3, 32, 32) uint8 flattened to (n, 3072), labels as a list."""
    batch = {b"batch_label": b"fake batch", b"labels": [int(v) for v in labels],
             b"data": images.reshape(len(images), -1), b"filenames": [b"img%d.png" % i for i in range(len(images))]}
    return pickle.dumps(batch, protocol=protocol)


def write_cifar_tarball(path: Path, per_batch: int = 2, n_test: int = 3, seed: int = 0,
                        skip: tuple[str, ...] = ()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write a fake CIFAR-10 tarball; return ``{"train": (images, labels), "test": (...)}`` it holds.

    The train batches alternate pickle protocols 2 and 4 (the real files are protocol 2); ``skip``
    leaves batches out, to make a damaged archive.
    """
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 256, size=(5 * per_batch, 3, 32, 32), dtype=np.uint8)
    train[0, 0, 0, 0], train[0, 2, 31, 31] = 0, 255
    train_labels = rng.integers(0, 10, size=5 * per_batch)
    test = rng.integers(0, 256, size=(n_test, 3, 32, 32), dtype=np.uint8)
    test_labels = rng.integers(0, 10, size=n_test)
    members = {f"data_batch_{i + 1}": cifar_batch(train[i * per_batch:(i + 1) * per_batch],
                                                   train_labels[i * per_batch:(i + 1) * per_batch], 2 + 2 * (i % 2))
               for i in range(5)}
    members["test_batch"] = cifar_batch(test, test_labels)
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in members.items():
            if name in skip:
                continue
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return {"train": (train, train_labels), "test": (test, test_labels)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def serve(monkeypatch, files: dict[str, Path], fail: tuple[str, ...] = ()) -> list[str]:
    """Make the library's downloads read ``files`` (file name -> local path); return the URLs asked for.

    A URL whose file is not in ``files``, or that starts with one of ``fail``, raises ``URLError``
    as an unreachable host does.
    """
    asked: list[str] = []

    def opener(url: str, timeout: float) -> io.BytesIO:
        asked.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files or url.startswith(fail):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return io.BytesIO(files[name].read_bytes())

    monkeypatch.setattr(online_data, "_open_url", opener)
    return asked
