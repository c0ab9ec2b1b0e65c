import gzip
import struct

import numpy as np
import pytest
import torch

from robustrl.supervised.data import load_dataset, load_idx_dataset, read_idx, subset


def write_idx(path, array, gz=False):
    codes = {np.dtype(np.uint8): 0x08}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(header + array.tobytes())


def make_idx_dir(root, gz):
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    write_idx(root / f"train-images-idx3-ubyte{suffix}", images, gz)
    write_idx(root / f"train-labels-idx1-ubyte{suffix}", np.array([0, 1, 2, 3, 4, 5], dtype=np.uint8), gz)
    write_idx(root / f"t10k-images-idx3-ubyte{suffix}", rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), gz)
    write_idx(root / f"t10k-labels-idx1-ubyte{suffix}", np.array([9, 0, 1], dtype=np.uint8), gz)


def test_digits_shapes_range_and_fixed_split(digits):
    assert digits.x_train.shape == (1347, 1, 8, 8) and digits.x_test.shape == (450, 1, 8, 8)
    assert digits.x_train.dtype == torch.float32 and digits.y_train.dtype == torch.int64
    assert 0 <= digits.x_train.min() and digits.x_train.max() <= 1
    again = load_dataset("digits")
    assert torch.equal(again.x_test, digits.x_test) and torch.equal(again.y_train, digits.y_train)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
    make_idx_dir(tmp_path, gz)
    data = load_idx_dataset(tmp_path)
    assert data.x_train.shape == (6, 1, 28, 28) and data.num_classes == 10
    assert data.x_train.max() <= 1 and data.x_train.min() >= 0
    raw = read_idx(tmp_path / f"train-images-idx3-ubyte{'.gz' if gz else ''}")
    np.testing.assert_allclose(data.x_train[:, 0].numpy(), raw / 255.0, rtol=1e-6)
    assert load_dataset("mnist", tmp_path).y_test.tolist() == [9, 0, 1]


def test_missing_files_name_path_and_package(tmp_path):
    with pytest.raises(ValueError, match="dataset-fashion-mnist") as err:
        load_dataset("fashion-mnist", tmp_path)
    assert str(tmp_path) in str(err.value)
    with pytest.raises(ValueError, match="root"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="'cifar'"):
        load_dataset("cifar")


def test_bad_idx_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "bad")


def test_subset_is_seeded(digits):
    a, b = subset(digits, 100, 50, seed=3), subset(digits, 100, 50, seed=3)
    assert len(a.y_train) == 100 and len(a.y_test) == 50
    assert torch.equal(a.x_train, b.x_train)
