"""Optional Fashion-MNIST for readers who are online; the book itself never needs it.

``load_fashion_mnist(root)`` returns ``(images, labels, name)`` with images of shape
``(N, 1, 28, 28)`` on the [-1, 1] scale. It reads the two IDX files of the split from ``root``
(downloading them first from a public mirror when they are missing). When the download fails --
no network, as on the book's build machines -- it prints one sentence and falls back to the
book's 8x8 digits (``diffusion_lib.data.load_digits_split``), so a chapter cell runs everywhere;
``name`` says which data set came back. A file that is there but damaged is never replaced by
the fallback: it raises an error that names it.

The IDX format (LeCun et al.): a big-endian header -- two zero bytes, a type code (``0x08`` =
unsigned bytes), the number of dimensions -- then one big-endian ``uint32`` per dimension, then
the values, row-major; the files are gzip-compressed.
"""

from __future__ import annotations

import gzip
import numbers
import os
import struct
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch

from diffusion_lib.data.builtin import load_digits_split
from diffusion_lib.errors import InputTypeError, InputValueError

__all__ = ["load_fashion_mnist"]

#: Public mirror of the data set.
_MIRRORS: tuple[str, ...] = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
#: The IDX files of each split: (images, labels).
_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: Default folder for downloaded files (outside the repository, so the book never picks them up).
_CACHE = Path.home() / ".cache" / "diffusion_book"
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_DAMAGED = "delete it so that it is downloaded again, or put an intact copy there"


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


def _download(url: str, dest: Path, timeout: float = 10.0) -> None:
    """Fetch ``url`` to ``dest`` (written atomically: a failed download leaves nothing behind)."""
    tmp = dest.with_suffix(dest.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
            f.write(response.read())
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _fetch(root: Path, split: str) -> tuple[Path, Path]:
    """The two files of ``split`` in ``root``, downloaded if missing; ``ConnectionError`` if that fails."""
    paths = []
    for fname in _FILES[split]:
        dest = root / fname
        if not dest.is_file():
            reasons = []
            for mirror in _MIRRORS:
                try:
                    root.mkdir(parents=True, exist_ok=True)
                    _download(mirror + fname, dest)
                    break
                except Exception as err:  # noqa: BLE001 - any failure means "try the next mirror"
                    reasons.append(f"{type(err).__name__}: {err}")
            else:
                raise ConnectionError(
                    f"Fashion-MNIST could not be downloaded to {root} ({'; '.join(reasons)}): connect to the "
                    f"internet, copy {fname} there by hand, or leave fallback=True to use the 8x8 digits."
                )
        paths.append(dest)
    return paths[0], paths[1]


def load_fashion_mnist(
    root: str | Path = _CACHE / "fashion_mnist",
    split: str = "train",
    limit: int | None = None,
    fallback: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fashion-MNIST as ``(images (N, 1, 28, 28) in [-1, 1], labels (N,), "fashion_mnist")``; offline: the digits.

    Args:
        root: folder that holds (or receives) the IDX files.
        split: ``"train"`` or ``"test"``; the fallback uses the same part of the 8x8 digits.
        limit: keep the first ``limit`` images (a positive int, NumPy ints too), or None for all.
        fallback: when the download fails, print one sentence and return
            ``(digits, labels, "digits")``; with False the failure raises ``ConnectionError``.
    """
    if not isinstance(root, (str, os.PathLike)):
        raise InputTypeError(f"root must be a folder path, got {type(root).__name__}")
    if not isinstance(split, str) or split not in _FILES:
        raise InputValueError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or int(limit) < 1:
            raise InputValueError(f"limit must be a positive int (the number of images to keep) or None, got {limit!r}")
        limit = int(limit)
    if not isinstance(fallback, bool):
        raise InputTypeError(f"fallback must be True or False, got {fallback!r}")
    try:
        img_path, lbl_path = _fetch(Path(root), split)
    except ConnectionError:
        if not fallback:
            raise
        print("Fashion-MNIST is not available offline and could not be downloaded, so this cell uses the "
              "book's 8x8 digits instead.")
        x, y = load_digits_split(split)
        return x[:limit], y[:limit], "digits"
    images, labels = _read_idx(img_path), _read_idx(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0] or images.dtype != np.uint8:
        raise InputValueError(
            f"{img_path} / {lbl_path}: expected uint8 images (N, H, W) and labels (N,), got {images.dtype} "
            f"{images.shape} and {labels.shape}; {_DAMAGED}"
        )
    images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 127.5 - 1.0
    return x, torch.from_numpy(labels.astype(np.int64)), "fashion_mnist"
