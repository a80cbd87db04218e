"""Optional MNIST / Fashion-MNIST for readers who are online; the book itself never needs them.

``load_mnist(root)`` and ``load_fashion_mnist(root)`` return ``(images, labels, name)`` with images
of shape ``(N, 1, 28, 28)`` on the [-1, 1] scale. They read the four IDX files of the data set
from ``root`` (downloading them first from a public mirror when they are missing). When the
download fails -- no network, as on the book's build machines -- they print one sentence and fall
back to the book's 8x8 digits (``diffusion_lib.data.load_digits_split``), so a chapter cell runs
everywhere; ``name`` says which data set came back.

The IDX format (LeCun et al.): a big-endian header -- two zero bytes, a type code (``0x08`` =
unsigned bytes), the number of dimensions -- then one big-endian ``uint32`` per dimension, then
the values, row-major. :func:`read_idx` parses it (gzip-compressed or not).
"""

from __future__ import annotations

import gzip
import struct
import urllib.request
from pathlib import Path

import numpy as np
import torch

from diffusion_lib.data.builtin import load_digits_split

__all__ = ["read_idx", "write_idx", "load_mnist", "load_fashion_mnist", "download", "MIRRORS", "FILES"]

#: Public mirrors of the two data sets (the files are identical on each).
MIRRORS: dict[str, list[str]] = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
#: The IDX files of each split: (images, labels).
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
#: Default folder for downloaded files (outside the repository, so the book never picks them up).
_CACHE = Path.home() / ".cache" / "diffusion_book"
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into a NumPy array of the shape stored in its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (it must start with two zero bytes, a type code and a rank)")
    ndim = data[3]
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[data[2]])
    body = data[4 + 4 * ndim :]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise ValueError(f"{path}: the header promises {expected} bytes of data for shape {shape}, the file has {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(shape)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8/int8 array as an IDX file (gzip-compressed if ``path`` ends in ``.gz``)."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _CODES:
        raise TypeError(f"write_idx writes uint8 or int8 arrays, got {array.dtype}")
    header = bytes([0, 0, _CODES[array.dtype], array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
    return path


def download(url: str, dest: Path, timeout: float = 10.0) -> None:
    """Fetch ``url`` to ``dest`` (written atomically)."""
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
        f.write(response.read())
    tmp.replace(dest)


def _fetch(name: str, root: Path, split: str) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for fname in FILES[split]:
        dest = root / fname
        if not dest.is_file():
            errors = []
            for mirror in MIRRORS[name]:
                try:
                    download(mirror + fname, dest)
                    break
                except Exception as err:  # noqa: BLE001 - any failure means "try the next mirror"
                    errors.append(f"{mirror}: {err}")
            else:
                raise ConnectionError("; ".join(errors))
        paths.append(dest)
    return paths[0], paths[1]


def _load(name: str, pretty: str, root: str | Path, split: str, limit: int | None,
          fallback: bool) -> tuple[torch.Tensor, torch.Tensor, str]:
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    try:
        img_path, lbl_path = _fetch(name, Path(root), split)
        images, labels = read_idx(img_path), read_idx(lbl_path)
    except Exception as err:  # noqa: BLE001
        if not fallback:
            raise
        print(f"{pretty} is not available offline and could not be downloaded ({type(err).__name__}), "
              "so this cell uses the book's 8x8 digits instead.")
        x, y = load_digits_split("train" if split == "train" else "test")
        return (x[:limit], y[:limit], "digits") if limit else (x, y, "digits")
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{img_path} / {lbl_path}: expected images (N, H, W) and labels (N,), got {images.shape} and {labels.shape}")
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1) / 127.5 - 1.0
    return x, torch.from_numpy(labels.astype(np.int64)), name


def load_mnist(root: str | Path = _CACHE / "mnist", split: str = "train", limit: int | None = None,
               fallback: bool = True) -> tuple[torch.Tensor, torch.Tensor, str]:
    """MNIST as ``(images (N, 1, 28, 28) in [-1, 1], labels (N,), "mnist")``; offline: the digits.

    ``limit`` keeps the first ``limit`` images. With ``fallback=False`` a failed download raises.
    """
    return _load("mnist", "MNIST", root, split, limit, fallback)


def load_fashion_mnist(root: str | Path = _CACHE / "fashion_mnist", split: str = "train", limit: int | None = None,
                       fallback: bool = True) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Fashion-MNIST as ``(images (N, 1, 28, 28) in [-1, 1], labels (N,), "fashion_mnist")``; offline: the digits."""
    return _load("fashion_mnist", "Fashion-MNIST", root, split, limit, fallback)
