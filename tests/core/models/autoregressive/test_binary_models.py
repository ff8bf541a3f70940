"""fvsbn, nade, made and pixelcnn: the autoregressive property, a pmf that sums to one over
every binary image, a sampler whose frequencies follow it, each model's own conditional and
training on binarized MNIST (the command line: test_binary_cli.py)."""

import itertools
import math

import numpy as np
import pytest
import torch

from core import registry
from core.data.mnist import MNIST
from core.models.autoregressive import FVSBN, MADE, NADE, PixelCNN

F64 = torch.float64
NAMES = ["fvsbn", "nade", "made", "pixelcnn"]
SMALL = {"fvsbn": {}, "nade": {"hidden": 16}, "made": {"hidden": 128, "layers": 2}, "pixelcnn": {"hidden": 4, "layers": 2}}


def build(name, shape=(1, 8, 8), seed=0, scale=0.3, **overrides):
    """A float64 model whose every weight is moved off its start (FVSBN's W starts at zero)."""
    torch.manual_seed(seed)
    model = registry.build_model(name, shape, {**SMALL[name], **overrides}).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model.eval()


def all_images(shape):
    D = math.prod(shape)
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=F64)  # (2^D, D)
    return bits.reshape(-1, *shape)


@pytest.mark.parametrize("name", NAMES)
def test_logit_i_reads_only_the_pixels_before_i_on_8x8(name):
    model = build(name)
    x = torch.rand(1, 1, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(1))
    J = torch.autograd.functional.jacobian(lambda v: model.logits(v)[0], x).reshape(64, 64)  # (i, j)
    assert (J.triu() == 0).all()  # d s_i / d x_j = 0 for every j >= i
    for i in range(1, 64):
        assert (J[i, :i] != 0).any(), i  # and s_i does read the past


@pytest.mark.parametrize("name", NAMES)
def test_logit_i_reads_only_the_pixels_before_i_on_28x28(name):
    # MADE: more units than pixels, so that each early degree has a unit alive on some of the 8 images
    model = build(name, (1, 28, 28), scale=0.05, **({"hidden": 1600, "layers": 1} if name == "made" else {}))
    x = torch.rand(8, 1, 28, 28, dtype=F64, requires_grad=True)
    s = model.logits(x)  # (8, 784)
    for i in [1, 27, 28, 300, 601, 783]:
        (g,) = torch.autograd.grad(s[:, i].sum(), x, retain_graph=True)
        g = g.reshape(8, -1).abs().sum(0)
        assert (g[i:] == 0).all(), i
        assert (g[:i] != 0).any(), i


@pytest.mark.parametrize("name", NAMES)
def test_the_pmf_sums_to_one_over_all_512_images_of_3x3(name):
    model = build(name, (1, 3, 3))
    with torch.no_grad():
        log_p = model.log_prob(all_images((1, 3, 3)))  # (512,)
    assert torch.isfinite(log_p).all() and (log_p < 0).all()
    assert abs(torch.logsumexp(log_p, 0).exp().item() - 1.0) < 1e-10


@pytest.mark.parametrize("name", NAMES)
def test_the_sampler_draws_each_of_the_16_images_of_2x2_at_its_probability(name):
    model = build(name, (1, 2, 2))
    images = all_images((1, 2, 2))
    with torch.no_grad():
        p = model.log_prob(images).exp().numpy()  # (16,)
        n = 40_000
        x = model.sample(n, generator=torch.Generator().manual_seed(3))
    assert set(x.unique().tolist()) <= {0.0, 1.0} and x.shape == (n, 1, 2, 2)
    index = (model.flat(x) * torch.tensor([8.0, 4.0, 2.0, 1.0], dtype=F64)).sum(1).long()
    count = np.bincount(index.numpy(), minlength=16)
    # Pearson's chi-square over the images of probability >= 0.005, the rarer ones pooled as one cell
    rare = p < 0.005
    observed, expected = count[~rare], n * p[~rare]
    if rare.any():
        observed, expected = np.append(observed, count[rare].sum()), np.append(expected, n * p[rare].sum())
    chi2 = ((observed - expected) ** 2 / expected).sum()
    k = len(observed) - 1
    q999 = k * (1 - 2 / (9 * k) + 3.09 * math.sqrt(2 / (9 * k))) ** 3  # Wilson-Hilferty: the 0.999 quantile
    assert k >= 6 and chi2 < q999, (chi2, q999)
    # and a sampler that ignored the past (pixels drawn from their marginals) is caught
    marginal = model.flat(x).mean(0).numpy()
    p_indep = np.prod(np.where(model.flat(images).numpy() == 1, marginal, 1 - marginal), 1)
    assert np.abs(p_indep - p).sum() > 0.05


@pytest.mark.parametrize("name", NAMES)
def test_the_samplers_one_pixel_logits_equal_the_one_pass_logits(name):
    model = build(name, (1, 6, 5))
    with torch.no_grad():
        x, frames = model.draw(3, frames=4)
        full = model.logits(x)  # (3, 30)
        cache, flat = {}, model.flat(x)
        step = torch.stack([model.conditional_logit(flat, i, cache) for i in range(30)], 1)
    torch.testing.assert_close(step, full, rtol=1e-9, atol=1e-9)
    # the film strip: the canvas after round(k D / 4) pixels holds those pixels of the sample, zeros after
    for k, frame in enumerate(frames, 1):
        done = round(k * 30 / 4)
        torch.testing.assert_close(model.flat(frame)[:, :done], flat[:, :done])
        assert (model.flat(frame)[:, done:] == 0).all()
    torch.testing.assert_close(frames[-1], x)
    # more canvases than pixels: each canvas still holds the pixels drawn by then
    with torch.no_grad():
        x, frames = build(name, (1, 2, 2)).draw(2, frames=8)
    assert frames.shape == (8, 2, 1, 2, 2)
    for k, frame in enumerate(frames, 1):
        done = max(1, round(k * 4 / 8))
        torch.testing.assert_close(frame.reshape(2, 4)[:, :done], x.reshape(2, 4)[:, :done])
        assert (frame.reshape(2, 4)[:, done:] == 0).all()


def test_fvsbn_is_a_logistic_regression_on_the_earlier_pixels():
    model = build("fvsbn", (1, 2, 3))
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0, 1.0]], dtype=F64)
    W, b = model.W.detach(), model.b.detach()
    expected = 0.0
    for i in range(6):
        p_i = torch.sigmoid(b[i] + sum(W[i, j] * x[0, j] for j in range(i)))  # W's upper part is never read
        expected += math.log(p_i if x[0, i] == 1 else 1 - p_i)
    assert abs(model.log_prob(x.reshape(1, 1, 2, 3)).item() - expected) < 1e-12


def test_nade_shares_one_hidden_layer_through_the_running_sum():
    model = build("nade", (1, 2, 3))
    x = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0, 1.0]], dtype=F64)
    W, c, V, b = (t.detach() for t in (model.W, model.c, model.V, model.b))
    expected = 0.0
    for i in range(6):
        h_i = torch.sigmoid(c + W[:, :i] @ x[0, :i])  # h_i = sigmoid(c + W_{:,<i} x_<i)
        p_i = torch.sigmoid(b[i] + V[i] @ h_i)
        expected += math.log(p_i if x[0, i] == 1 else 1 - p_i)
    assert abs(model.log_prob(x.reshape(1, 1, 2, 3)).item() - expected) < 1e-12


def test_made_masks_follow_the_degrees():
    model = build("made", (1, 4, 4), hidden=20, layers=2)
    first, second = model.hidden_layers
    m_in = torch.arange(1, 17)
    m_h = 1 + torch.arange(20) * 15 // 20  # spread evenly over 1..D-1
    assert m_h.min() == 1 and m_h.max() == 15
    assert torch.equal(first.mask.bool(), m_h[:, None] >= m_in[None, :])
    assert torch.equal(second.mask.bool(), m_h[:, None] >= m_h[None, :])
    assert torch.equal(model.out.mask.bool(), m_in[:, None] > m_h[None, :])


def test_pixelcnn_is_refused_on_images_of_more_than_one_channel():
    from core.errors import DataError

    with pytest.raises(DataError, match="one-channel"):
        registry.build_model("pixelcnn", (3, 8, 8))


@pytest.mark.parametrize("name", NAMES)
def test_they_are_built_for_binary_images(name):
    cls = registry.model_spec(name).cls
    assert cls is {"fvsbn": FVSBN, "nade": NADE, "made": MADE, "pixelcnn": PixelCNN}[name]
    assert cls.data_kinds == ("images",) and cls.pixels == "binary"
    assert cls.has_log_prob and cls.log_prob_is_exact
    lit = registry.model_spec(name).literature
    assert lit.unit == "nats" and 75 < lit.value < 100


@pytest.mark.parametrize("name", NAMES)
def test_a_few_steps_on_binarized_mnist_lower_the_nll(name, mnist_dir):
    torch.manual_seed(0)
    x = MNIST(mnist_dir).training_set(640, 0)  # (640, 1, 28, 28) grey levels
    model = registry.build_model(name, (1, 28, 28), SMALL[name])
    model.init_from_data(x[:256])
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    nll = []
    for step in range(40):
        out = model.loss(x[(step * 32) % 640:][:32])  # a fresh binarization of each batch
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        nll.append(float(out["nll"]))
    # from the independent pixels of init_from_data (about 206 nats) to a model that reads the past
    assert np.mean(nll[-8:]) < np.mean(nll[:8]) - 5.0, nll
    assert 50 < nll[-1] < 400  # nats of a 784-pixel binary digit: below the 543 of p = 1/2 everywhere
