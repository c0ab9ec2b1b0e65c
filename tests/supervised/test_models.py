import pytest
import torch

from robustrl.supervised.models import MMCNet, PaperCNN, SmallCNN, make_model, simplex_centers


def test_paper_cnn_shapes():
    net = PaperCNN()
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (8, 8), (2, 2)), (128, (6, 6), (2, 2)), (128, (5, 5), (1, 1))]
    assert any(isinstance(m, torch.nn.ELU) for m in net.modules())


def test_small_cnn_and_mmc_head():
    assert SmallCNN()(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    net = make_model("small-cnn", head="mmc", mmc_C=10.0)
    assert isinstance(net, MMCNet)
    x = torch.rand(3, 1, 8, 8)
    z = net.embedding(x)
    torch.testing.assert_close(net(x), -((z[:, None] - net.centers[None]) ** 2).sum(-1), rtol=1e-4, atol=1e-3)


def test_simplex_centers_geometry():
    mu = simplex_centers(10, 16, 5.0)
    torch.testing.assert_close(mu.norm(dim=1), torch.full((10,), 5.0))
    gram = mu @ mu.T
    off = gram[~torch.eye(10, dtype=bool)]
    torch.testing.assert_close(off, torch.full_like(off, -25.0 / 9))
    with pytest.raises(ValueError, match="dim"):
        simplex_centers(10, 5, 1.0)


def test_make_model_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = make_model("small-cnn", seed=4), make_model("small-cnn", seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="'resnet'"):
        make_model("resnet")
