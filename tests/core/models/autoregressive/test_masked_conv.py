"""Causal masked convolutions: mask A reads exactly the kernel's pixels before the centre in
raster order, mask B those and the centre; a PixelCNN stack of them reads only earlier pixels,
and its one-pixel evaluation from kept activations equals the whole forward pass."""

import pytest
import torch

from core.nets.masked_conv import MaskedConv2d, PixelCNNNet, causal_mask

F64 = torch.float64


def jacobian(f, shape, seed=0):
    """d f(x)_p / d x_q for one image x (1, *shape) of uniform noise: (P, Q), flat raster order."""
    x = torch.rand(1, *shape, dtype=F64, generator=torch.Generator().manual_seed(seed))
    J = torch.autograd.functional.jacobian(lambda v: f(v).reshape(-1), x)
    return J.reshape(-1, x.numel())


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("k", [3, 5, 7])
def test_a_masked_kernel_reads_exactly_the_earlier_pixels_of_its_window(mask_type, k):
    torch.manual_seed(0)
    conv = MaskedConv2d(1, 1, k, mask_type).double()
    with torch.no_grad():
        conv.weight.uniform_(0.5, 1.5)  # every kept tap nonzero
    H = W = 8
    J = jacobian(conv, (1, H, W))
    for p in range(H * W):
        r, c = divmod(p, W)
        for q in range(H * W):
            rq, cq = divmod(q, W)
            in_window = abs(rq - r) <= k // 2 and abs(cq - c) <= k // 2
            before = q < p or (mask_type == "B" and q == p)
            assert (J[p, q] != 0) == (in_window and before), (mask_type, k, (r, c), (rq, cq))


def test_the_masks_are_the_papers():
    A = causal_mask(3, "A")
    B = causal_mask(3, "B")
    assert A.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert B.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert causal_mask(7, "A").sum() == 24 and causal_mask(1, "B").sum() == 1 and causal_mask(1, "A").sum() == 0
    with pytest.raises(ValueError, match="odd size"):
        causal_mask(4, "A")
    with pytest.raises(ValueError, match="A, B"):
        causal_mask(3, "C")


def stack(h=4, blocks=2, seed=0):
    torch.manual_seed(seed)
    net = PixelCNNNet(1, 1, h, blocks).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


def test_the_stacked_pixelcnn_reads_only_earlier_pixels_on_8x8():
    J = jacobian(stack(), (1, 8, 8))
    D = 64
    assert (J.triu() == 0).all()  # d s_i / d x_j = 0 for every j >= i, the diagonal included
    for i in range(1, D):
        assert (J[i, :i] != 0).any(), i
    assert (J[0] == 0).all()  # the first pixel reads nothing
    r, c = divmod(D - 1, 8)
    assert J[D - 1, D - 2] != 0 and J[D - 1, (r - 1) * 8 + c] != 0  # the left and upper neighbours


def test_the_stacked_pixelcnn_reads_only_earlier_pixels_on_28x28():
    net = stack(h=4, blocks=3)
    x = torch.rand(2, 1, 28, 28, dtype=F64, requires_grad=True)
    s = net(x).reshape(2, -1)
    for i in [0, 1, 27, 28, 29, 400, 405, 783]:
        (g,) = torch.autograd.grad(s[:, i].sum(), x, retain_graph=True)
        g = g.reshape(2, -1).abs().sum(0)
        assert (g[i:] == 0).all(), i
        assert i == 0 or (g[:i] != 0).any(), i


def test_one_pixel_from_kept_activations_equals_the_whole_forward_pass():
    net = stack(h=4, blocks=3)
    x = (torch.rand(3, 1, 9, 7, dtype=F64) < 0.4).to(F64)
    full = net(x)  # (3, 1, 9, 7)
    # the sampler's order: at pixel (r, c) the image holds the pixels before it, zeros after
    cache, seen = {}, torch.zeros_like(x)
    for i in range(63):
        r, c = divmod(i, 7)
        step = net.logit_at(seen, r, c, cache)  # (3, 1)
        torch.testing.assert_close(step, full[:, :, r, c], rtol=1e-10, atol=1e-10)
        seen[:, :, r, c] = x[:, :, r, c]
