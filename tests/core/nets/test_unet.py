"""The U-Net: the shape of its input back, at every size it meets, and a time that reaches the output."""

from __future__ import annotations

import pytest
import torch

from core.errors import ConfigError
from core.nets.auto import Rescale, auto_ema, pick_net
from core.nets.unet import UNet


def _randomised(net: UNet) -> UNet:
    """The last convolution starts at zero (an untrained f = 0); give it weights so that the rest shows."""
    torch.nn.init.normal_(net.out.weight, std=0.1)
    torch.nn.init.normal_(net.out.bias, std=0.1)
    return net


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (2, 7, 9)])
def test_the_output_has_the_input_shape_for_images_and_flat_rows(shape):
    torch.manual_seed(0)
    net = _randomised(UNet(shape, channels=8))
    x = torch.randn(3, *shape)
    out = net(x, torch.rand(3))
    assert out.shape == x.shape and torch.isfinite(out).all()
    flat = net(x.reshape(3, -1), torch.rand(3))
    assert flat.shape == (3, x[0].numel())


def test_an_untrained_unet_is_the_zero_map():
    net = UNet((1, 8, 8), channels=8)
    assert torch.equal(net(torch.randn(4, 1, 8, 8), torch.rand(4)), torch.zeros(4, 1, 8, 8))


def test_the_time_reaches_the_output_of_its_own_image_only():
    # d f(x_i, t_i) / d t_j: nonzero for j = i (the embedding reaches the output through every
    # block), exactly zero for j != i (GroupNorm and convolutions never mix the images of a batch).
    torch.manual_seed(1)
    net = _randomised(UNet((1, 28, 28), channels=8))
    x = torch.randn(3, 1, 28, 28)
    t = torch.tensor([0.2, 0.5, 0.9], requires_grad=True)
    out = net(x, t)
    for i in range(3):
        (grad,) = torch.autograd.grad(out[i].sum(), t, retain_graph=True)
        assert grad[i].abs() > 1e-6, grad
        assert torch.equal(grad[[j for j in range(3) if j != i]], torch.zeros(2)), grad


def test_one_shared_time_is_the_same_as_that_time_for_every_image():
    torch.manual_seed(2)
    net = _randomised(UNet((1, 8, 8), channels=8))
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(net(x, torch.full((1,), 0.3)), net(x, torch.full((5,), 0.3)))


def test_a_unet_refuses_data_that_are_not_images():
    with pytest.raises(ValueError, match="C, H, W"):
        UNet((2,))
    with pytest.raises(ValueError, match="shape"):
        UNet((1, 8, 8))(torch.randn(2, 1, 9, 9), torch.rand(2))


def test_auto_settings_pick_the_unet_and_an_average_for_images_only():
    assert pick_net("auto", (1, 28, 28)) == "unet" and pick_net("auto", (2,)) == "mlp"
    assert pick_net("mlp", (1, 28, 28)) == "mlp"
    with pytest.raises(ConfigError, match="net=unet needs images"):
        pick_net("unet", (2,))
    assert auto_ema(-1.0, (1, 28, 28)) == 0.999 and auto_ema(-1.0, (2,)) == 0.0
    assert auto_ema(0.9, (2,)) == 0.9 and auto_ema(0.0, (1, 8, 8)) == 0.0


def test_pixels_go_to_minus_one_one_and_back():
    r = Rescale.for_data((1, 8, 8))
    x = torch.rand(4, 1, 8, 8)
    y = r.encode(x)
    assert y.min() >= -1 and y.max() <= 1
    torch.testing.assert_close(r.decode(y), x)
    assert r.decode(torch.tensor([-3.0, 3.0])).tolist() == [0.0, 1.0]  # samples are clipped to [0, 1]
    assert r.log_det(64) == pytest.approx(64 * torch.log(torch.tensor(2.0)).item())
    assert Rescale.for_data((2,)).identity
