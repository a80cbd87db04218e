"""Optional image data sets for readers who are online: MNIST, Fashion-MNIST and CIFAR-10.

The book itself never needs them. ``load_image_dataset(name, root)`` returns
``(images, labels, name)`` with images of shape ``(N, C, H, W)`` on the [-1, 1] scale:
``(N, 1, 28, 28)`` for MNIST and Fashion-MNIST, ``(N, 3, 32, 32)`` for CIFAR-10. It reads the files of the split
from ``root`` (default ``~/.cache/diffusion_book/<name>``, with ``_`` for ``-``); a file that is
missing is first downloaded from the data set's public address and checked against the checksum
its publishers give (:data:`CHECKSUMS`), and only a file that matches is kept. When the download
fails -- no network, as on the book's build machines -- it prints one sentence and falls back to
the book's 8x8 digits (``diffusion_lib.data.load_digits_split``), so a chapter cell runs
everywhere; ``name`` says which data set came back. A file that is there but damaged is never
replaced by the fallback: it raises an error that names it. Files already in ``root`` are read as
they are (their structure is checked, not their checksum), so a copy placed there by hand works.
``load_fashion_mnist`` is the Fashion-MNIST case, kept for the chapters that call it.

The IDX format of MNIST and Fashion-MNIST (LeCun et al.): a big-endian header -- two zero bytes,
a type code (``0x08`` = unsigned bytes), the number of dimensions -- then one big-endian
``uint32`` per dimension, then the values, row-major; the files are gzip-compressed.

CIFAR-10 (Krizhevsky, 2009) comes as ``cifar-10-python.tar.gz``: five training batches and one
test batch, each a pickled dict whose ``data`` is a ``uint8`` array of shape ``(10000, 3072)``
(the red, green and blue 32x32 planes of each image, row-major) and whose ``labels`` is a list
of ints 0..9. The batches are read with an unpickler that can build only NumPy arrays, dtypes and
byte strings: any other object in the file is refused, so reading a file never runs its code.
An unpacked ``cifar-10-batches-py`` folder in ``root`` is read as well.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import numbers
import os
import pickle
import shutil
import struct
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from diffusion_lib.data.builtin import load_digits_split
from diffusion_lib.errors import InputTypeError, InputValueError

try:  # NumPy 2 moved the array reconstructor that pickles name; NumPy 1 has only the old place
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct

__all__ = ["IMAGE_DATA_SETS", "CHECKSUMS", "load_image_dataset", "load_fashion_mnist"]

#: The names :func:`load_image_dataset` reads (the online ones of ``diffusion_lib.train.DATA_SETS``).
IMAGE_DATA_SETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10")

_IDX_FILES: dict[str, tuple[str, ...]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR_TARBALL = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}


@dataclass(frozen=True)
class _Source:
    """Where a data set comes from and how its files are laid out."""

    title: str  # the name in a sentence
    mirrors: tuple[str, ...]  # base addresses, tried in order; a file's address is mirror + file name
    files: dict[str, tuple[str, ...]]  # split -> the files to download
    layout: str  # "idx" or "cifar"


_SOURCES: dict[str, _Source] = {
    # The original site (yann.lecun.com) now often refuses downloads; the S3 copy is the one
    # PyTorch's own MNIST loader uses, byte for byte the same files.
    "mnist": _Source("MNIST", ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
                     _IDX_FILES, "idx"),
    "fashion-mnist": _Source("Fashion-MNIST", ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
                             _IDX_FILES, "idx"),
    "cifar10": _Source("CIFAR-10", ("https://www.cs.toronto.edu/~kriz/",),
                       {"train": (_CIFAR_TARBALL,), "test": (_CIFAR_TARBALL,)}, "cifar"),
}

#: ``name -> {file: (hash algorithm, hex digest)}``: a downloaded file is kept only if it matches.
#: Each data set publishes MD5 sums only: Fashion-MNIST in the table of its README
#: (github.com/zalandoresearch/fashion-mnist), CIFAR-10 on its page (www.cs.toronto.edu/~kriz/cifar.html);
#: the MNIST page lists none, so these are the sums of its files that PyTorch's MNIST loader checks.
#: All nine sums were checked (December 2026) against the resource lists of torchvision's loaders.
CHECKSUMS: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        "train-labels-idx1-ubyte.gz": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
        "t10k-images-idx3-ubyte.gz": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
        "t10k-labels-idx1-ubyte.gz": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": ("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels-idx1-ubyte.gz": ("md5", "25c81989df183df01b3e8a0aad5dffbe"),
        "t10k-images-idx3-ubyte.gz": ("md5", "bef4ecab320f06d8554ea6380940ec79"),
        "t10k-labels-idx1-ubyte.gz": ("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
    },
    "cifar10": {
        _CIFAR_TARBALL: ("md5", "c58f30108f718f92721af3b95e74349a"),
    },
}

#: Default folder for downloaded files (outside the repository, so the book never picks them up).
_CACHE = Path.home() / ".cache" / "diffusion_book"
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_DAMAGED = "delete it so that it is downloaded again, or put an intact copy there"


def _default_root(name: str) -> Path:
    """The cache folder of data set ``name``: ``~/.cache/diffusion_book/<name with _ for ->``."""
    return _CACHE / name.replace("-", "_")


# ------------------------------------------------------------------------------------ IDX files
def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into a NumPy array of the shape stored in its header."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise InputValueError(f"{path} cannot be read ({err}); {_DAMAGED}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise InputValueError(
            f"{path} is not an IDX file (it must start with two zero bytes, a type code and a rank); {_DAMAGED}"
        )
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise InputValueError(f"{path}: the header is cut short (rank {ndim} needs {4 + 4 * ndim} bytes); {_DAMAGED}")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[data[2]])
    body = data[4 + 4 * ndim :]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise InputValueError(
            f"{path}: the header promises {expected} bytes of data for shape {shape}, the file has {len(body)}; {_DAMAGED}"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def _read_idx_pair(img_path: Path, lbl_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(N, 1, H, W)`` and labels ``(N,)`` from an images file and a labels file."""
    images, labels = _read_idx(img_path), _read_idx(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0] or images.dtype != np.uint8:
        raise InputValueError(
            f"{img_path} / {lbl_path}: expected uint8 images (N, H, W) and labels (N,), got {images.dtype} "
            f"{images.shape} and {labels.shape}; {_DAMAGED}"
        )
    return images[:, None], labels


# ------------------------------------------------------------------------------------ CIFAR-10
def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles call it to store a byte string, for latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 encoded byte strings may be built")
    return codecs.encode(text, "latin1")


#: The only globals a CIFAR batch may name: NumPy's array and dtype reconstruction (both module
#: names, NumPy 1 and 2) and the byte-string helper of protocol 2.
_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1,
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds plain containers, numbers, strings and NumPy arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a data batch") from None


def _cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``(n, 3, 32, 32)`` and int64 labels ``(n,)`` of one pickled CIFAR-10 batch."""
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways; each means "damaged"
        raise InputValueError(f"{where} is not a CIFAR-10 batch ({type(err).__name__}: {err}); {_DAMAGED}") from None
    if not isinstance(batch, dict):
        raise InputValueError(f"{where} holds a {type(batch).__name__}, not a CIFAR-10 batch (a dict); {_DAMAGED}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3 * 32 * 32):
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise InputValueError(f"{where}: 'data' must be a uint8 array (n, 3072), got {found}; {_DAMAGED}")
    labels = np.asarray(labels) if isinstance(labels, (list, tuple, np.ndarray)) else None
    if (labels is None or labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer)
            or (labels.size and (labels.min() < 0 or labels.max() > 9))):
        raise InputValueError(f"{where}: 'labels' must be {data.shape[0]} ints in 0..9, one per image; {_DAMAGED}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _read_cifar(path: Path, split: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The batches of ``split`` from the tarball (or unpacked folder) ``path``, up to ``limit`` images."""
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        tar = None if path.is_dir() else tarfile.open(path, "r:gz")
        try:
            for batch in _CIFAR_BATCHES[split]:
                if limit is not None and sum(len(p[1]) for p in parts) >= limit:
                    break
                if tar is None:
                    raw = (path / batch).read_bytes()
                else:
                    try:
                        member: BinaryIO | None = tar.extractfile(f"{_CIFAR_DIR}/{batch}")
                    except KeyError:
                        member = None
                    if member is None:
                        raise InputValueError(f"{path} has no file {_CIFAR_DIR}/{batch}; {_DAMAGED}")
                    raw = member.read()
                parts.append(_cifar_batch(raw, f"{path}: {batch}"))
        finally:
            if tar is not None:
                tar.close()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise InputValueError(f"{path} cannot be read ({type(err).__name__}: {err}); {_DAMAGED}") from None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# ------------------------------------------------------------------------------------ download
def _open_url(url: str, timeout: float) -> BinaryIO:
    """Open ``url`` for reading (the one place that touches the network; tests replace it)."""
    return urllib.request.urlopen(url, timeout=timeout)


def _download(url: str, dest: Path, timeout: float = 30.0) -> None:
    """Fetch ``url`` to ``dest`` (written atomically: a failed download leaves nothing behind)."""
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.part")  # one per process: torchrun ranks may race
    try:
        with _open_url(url, timeout) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f, 1 << 20)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_file(name: str, root: Path, fname: str) -> Path:
    """Download ``fname`` of data set ``name`` into ``root`` and verify it; ``ConnectionError`` if offline."""
    source, dest = _SOURCES[name], root / fname
    staged = root / f"{fname}.{os.getpid()}.download"
    reasons = []
    try:
        for mirror in source.mirrors:
            try:
                root.mkdir(parents=True, exist_ok=True)
                _download(mirror + fname, staged)
                break
            except (OSError, HTTPException, ValueError) as err:  # URLError, timeouts, refused writes: try the next
                reasons.append(f"{type(err).__name__}: {' '.join(str(err).split()).rstrip('.')}")
        else:
            raise ConnectionError(
                f"{source.title} could not be downloaded to {root} ({'; '.join(reasons)}): connect to the "
                f"internet, copy {fname} there by hand, or leave fallback=True to use the 8x8 digits."
            )
        algorithm, expected = CHECKSUMS[name][fname]
        got = _digest(staged, algorithm)
        if got != expected:
            raise InputValueError(
                f"{fname} downloaded from {mirror} has {algorithm.upper()} {got}, not the published {expected}, so "
                f"it was not kept: delete any copy of {fname} in {root} and run again, and if the sums differ again "
                f"fetch the file from the data set's own page and place it in {root} by hand"
            )
        staged.replace(dest)
    finally:
        staged.unlink(missing_ok=True)
    return dest


def _local_file(root: Path, fname: str, layout: str) -> Path | None:
    """The copy of ``fname`` in ``root``: as named, or unpacked (``.gz`` dropped, the CIFAR folder)."""
    if layout == "cifar" and (root / _CIFAR_DIR).is_dir():
        return root / _CIFAR_DIR
    for candidate in (fname, fname.removesuffix(".gz")):
        if (root / candidate).is_file():
            return root / candidate
    return None


# ------------------------------------------------------------------------------------ loaders
def _check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or int(limit) < 1:
        raise InputValueError(f"limit must be a positive int (the number of images to keep) or None, got {limit!r}")
    return int(limit)


def load_image_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    split: str = "train",
    download: bool = True,
    *,
    limit: int | None = None,
    fallback: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """An online image set as ``(images (N, C, H, W) float32 in [-1, 1], labels (N,) int64, name)``.

    Args:
        name: one of :data:`IMAGE_DATA_SETS`: ``"mnist"`` and ``"fashion-mnist"`` give
            ``(N, 1, 28, 28)``, ``"cifar10"`` gives ``(N, 3, 32, 32)``.
        root: folder that holds (or receives) the files; default ``~/.cache/diffusion_book/<name>``
            with ``_`` for ``-``.
        split: ``"train"`` or ``"test"``; the fallback uses the same part of the 8x8 digits.
        download: fetch missing files from the data set's public address (each is checked against
            :data:`CHECKSUMS` before it is kept); with False only the files in ``root`` are read.
        limit: keep the first ``limit`` images (a positive int, NumPy ints too), or None for all.
        fallback: when the files are missing and cannot be downloaded, print one sentence and
            return ``(digits, labels, "digits")``; with False a failed download raises
            ``ConnectionError`` and a missing file with ``download=False`` an ``InputValueError``.

    Returns:
        ``name`` as given, or ``"digits"`` when the fallback was used. A downloaded file whose
        checksum differs from the published one is not kept and raises ``InputValueError``.
    """
    if not isinstance(name, str) or name not in _SOURCES:
        raise InputValueError(f"name must be one of {list(IMAGE_DATA_SETS)}, got {name!r}; the 8x8 digits come "
                              "from load_digits_split")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise InputTypeError(f"root must be a folder path or None (the cache folder), got {type(root).__name__}")
    if not isinstance(split, str) or split not in _IDX_FILES:
        raise InputValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(download, bool):
        raise InputTypeError(f"download must be True or False, got {download!r}")
    limit = _check_limit(limit)
    if not isinstance(fallback, bool):
        raise InputTypeError(f"fallback must be True or False, got {fallback!r}")
    source = _SOURCES[name]
    root = _default_root(name) if root is None else Path(root)
    paths: list[Path] = []
    try:
        for fname in source.files[split]:
            path = _local_file(root, fname, source.layout)
            if path is None and not download:
                raise FileNotFoundError(fname)
            paths.append(path if path is not None else _fetch_file(name, root, fname))
    except (ConnectionError, FileNotFoundError) as err:
        if not fallback:
            if isinstance(err, ConnectionError):
                raise
            raise InputValueError(f"{source.title}: {err} is not in {root} and download=False; put the file there, "
                                  "or pass download=True") from None
        how = "could not be downloaded" if download else "downloading is off"
        print(f"{source.title} is not in {root} and {how}, so this run uses the book's 8x8 digits instead.")
        x, y = load_digits_split(split)
        return x[:limit], y[:limit], "digits"
    images, labels = _read_idx_pair(*paths) if source.layout == "idx" else _read_cifar(paths[0], split, limit)
    images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32))  # a copy (the file's bytes are read-only), scaled in place
    x.div_(127.5).sub_(1.0)
    return x, torch.from_numpy(labels.astype(np.int64)), name


def load_fashion_mnist(
    root: str | Path = _CACHE / "fashion_mnist",
    split: str = "train",
    limit: int | None = None,
    fallback: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fashion-MNIST as ``(images (N, 1, 28, 28) in [-1, 1], labels (N,), "fashion_mnist")``; offline: the digits.

    :func:`load_image_dataset` for ``"fashion-mnist"`` (with the name spelled ``"fashion_mnist"``).

    Args:
        root: folder that holds (or receives) the IDX files.
        split: ``"train"`` or ``"test"``; the fallback uses the same part of the 8x8 digits.
        limit: keep the first ``limit`` images (a positive int, NumPy ints too), or None for all.
        fallback: when the download fails, print one sentence and return
            ``(digits, labels, "digits")``; with False the failure raises ``ConnectionError``.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise InputTypeError(f"root must be a folder path, got {type(root).__name__}")
    x, y, name = load_image_dataset("fashion-mnist", root, split, limit=limit, fallback=fallback)
    return x, y, "fashion_mnist" if name == "fashion-mnist" else name
