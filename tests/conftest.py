"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test: tiny networks are faster on one thread, and much faster on a busy machine (no idle threads
    spinning; the suite runs on two workers, which with torch's default would share the cores with four)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
