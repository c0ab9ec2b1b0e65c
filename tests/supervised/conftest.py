import pytest
import torch

from robustrl.supervised.data import load_digits_dataset


@pytest.fixture(scope="session")
def digits():
    return load_digits_dataset()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
