"""Datasets with no download at run time: scikit-learn's 8x8 digits, Fashion-MNIST and MNIST from IDX files.

Every loader returns a :class:`Dataset` with images as float32 tensors of shape ``(N, 1, H, W)`` in
[0, 1] and int64 labels, split into a fixed train/test partition.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from robustrl.checks import check_int
from robustrl.supervised._checks import check_choice
from robustrl.supervised.names import DATASETS

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "Dataset",
    "load_dataset",
    "load_digits_dataset",
    "load_idx_dataset",
    "read_idx",
    "subset",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class Dataset(NamedTuple):
    """A fixed train/test split: images ``(N, 1, H, W)`` float32 in [0, 1], labels int64."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int
    name: str


def load_digits_dataset(test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's embedded 8x8 digits (1797 images, pixels 0..16 scaled to [0, 1]).

    The split is fixed: a stratified split with ``random_state=0`` (test fraction 0.25 by default).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=0, stratify=y)
    return Dataset(
        torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te), torch.from_numpy(y_te),
        10, "digits",
    )


def read_idx(path: Path | str) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array of its stored shape and dtype."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = raw[2], raw[3]
    if code not in dtypes:
        raise ValueError(f"{path}: unsupported IDX element type 0x{code:02x}")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[code], offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values")
    return data.reshape(shape)


def _find_idx(root: Path, stem: str, package_hint: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"missing IDX file {root / stem}[.gz]; {package_hint}"
    )


def load_idx_dataset(root: Path | str, name: str = "idx", package_hint: str | None = None) -> Dataset:
    """MNIST-style IDX files from ``root`` (``train-images-idx3-ubyte[.gz]`` etc.), standard train/test
    split."""
    root = Path(root)
    hint = package_hint or "put the four MNIST-format IDX files in that directory"
    arrays = {key: read_idx(_find_idx(root, stem, hint)) for key, stem in _IDX_FILES.items()}
    tensors = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{root}: {split} images {images.shape} and labels {labels.shape} do not match")
        tensors.append(torch.from_numpy(images.astype(np.float32) / 255.0)[:, None])
        tensors.append(torch.from_numpy(labels.astype(np.int64)))
    num_classes = int(max(tensors[1].max(), tensors[3].max())) + 1
    return Dataset(*tensors, num_classes, name)


def load_dataset(name: str, root: Path | str | None = None) -> Dataset:
    """Load ``"digits"``, ``"fashion-mnist"`` (Debian ``dataset-fashion-mnist``), ``"mnist"`` or ``"idx"``.

    ``mnist`` and ``idx`` need ``root``, a directory holding the IDX files; ``fashion-mnist`` defaults to
    /usr/share/datasets/fashion-mnist.
    """
    check_choice(name, DATASETS, "dataset")
    if name == "digits":
        return load_digits_dataset()
    if name == "fashion-mnist":
        hint = ("install it with `apt-get install dataset-fashion-mnist` or pass the directory holding "
                "the files")
        return load_idx_dataset(root or FASHION_MNIST_DIR, name, hint)
    if root is None:
        raise ValueError(f"dataset {name!r} needs a directory of IDX files (root=None given)")
    return load_idx_dataset(root, name)


def subset(data: Dataset, n_train: int | None, n_test: int | None, seed: int = 0) -> Dataset:
    """A stratification-free random subset (``None`` = keep all), drawn from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)

    def pick(x: Tensor, y: Tensor, n: int | None) -> tuple[Tensor, Tensor]:
        if n is None or n >= len(y):
            return x, y
        check_int(n, "subset size", 1)
        idx = torch.randperm(len(y), generator=gen)[:n].sort().values
        return x[idx], y[idx]

    x_tr, y_tr = pick(data.x_train, data.y_train, n_train)
    x_te, y_te = pick(data.x_test, data.y_test, n_test)
    return Dataset(x_tr, y_tr, x_te, y_te, data.num_classes, data.name)
