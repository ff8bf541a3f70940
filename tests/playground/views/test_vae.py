"""The VAE view: the latent space coloured by label, the decoder's manifold, the ELBO's terms
and the digits' panels."""

from __future__ import annotations

import re

import numpy as np

from playground.views import render_panel
from tests.playground.views.helpers import IMAGE_SHAPE, M, N, ctx, synthetic, trace, title_of


def test_vae_latent_colours_by_label_and_recon_links():
    snap = synthetic("vae")
    labels = np.arange(N) % 3
    fig = render_panel("vae", "vae_latent", snap, ctx(labels=labels, labels_name="component"))
    for lab in range(3):
        t = trace(fig, f"component {lab}")
        np.testing.assert_array_equal(t.x, snap["traces"]["z_mean"][labels == lab, 0])
    assert tuple(fig.layout.xaxis.range) == (-4.0, 4.0)
    fig = render_panel("vae", "vae_recon", snap, ctx())
    links = trace(fig, "x → recon")
    xy = np.stack([links.x, links.y], 1).reshape(-1, 3, 2)
    np.testing.assert_array_equal(xy[:, 0], snap["data"][: xy.shape[0]])
    np.testing.assert_array_equal(xy[:, 1], snap["traces"]["recon"][: xy.shape[0]])


def test_vae_manifold_mesh_follows_the_decoded_grid():
    snap = synthetic("vae")
    fig = render_panel("vae", "vae_manifold", snap, ctx())
    mesh = trace(fig, "decoder(latent grid)")
    row0 = np.stack([mesh.x[:M], mesh.y[:M]], 1)
    np.testing.assert_array_equal(row0, snap["traces"]["decoded_grid"].reshape(M, M, 2)[0])


def test_vae_elbo_panel_stacks_recon_and_kl_overall_and_by_label():
    snap = synthetic("vae")
    tr = snap["traces"]
    labels = np.arange(N) % 4
    fig = render_panel("vae", "vae_elbo", snap, ctx(labels=labels, labels_name="component"))
    recon, kl = trace(fig, "recon = E_q[−log p(x|z)]"), trace(fig, "KL(q(z|x) ‖ p(z))")
    assert list(recon.x) == ["all", "0", "1", "2", "3"] and fig.layout.barmode == "stack"
    np.testing.assert_allclose(recon.y[0], tr["elbo_recon"].mean(), rtol=1e-5)
    for lab in range(4):
        np.testing.assert_allclose(recon.y[lab + 1], tr["elbo_recon"][labels == lab].mean(), rtol=1e-5)
        np.testing.assert_allclose(kl.y[lab + 1], tr["elbo_kl"][labels == lab].mean(), rtol=1e-5)
    total = tr["elbo_recon"].mean() + tr["elbo_kl"].mean()
    assert f"mean −ELBO {total:.4g} nats" in title_of(fig)
    fig = render_panel("vae", "vae_elbo", synthetic("vae"), ctx())  # no labels: the one bar
    assert list(trace(fig, "KL(q(z|x) ‖ p(z))").x) == ["all"]
    for key in ("elbo_recon", "elbo_kl"):  # terms of the first 200 examples take their labels
        tr[key] = tr[key][:200]
    fig = render_panel("vae", "vae_elbo", snap, ctx(labels=labels, labels_name="component"))
    np.testing.assert_allclose(trace(fig, "KL(q(z|x) ‖ p(z))").y[1], tr["elbo_kl"][labels[:200] == 0].mean(), rtol=1e-5)


def test_vae_digits_panels_bits_per_dim_and_samples_beside_their_means():
    snap = synthetic("vae", d=784)
    c = ctx(data_shape=IMAGE_SHAPE, bounds=None)
    snap["metrics"] = {"nll": 123.4}
    fig = render_panel("vae", "vae_elbo", snap, c)
    total = snap["traces"]["elbo_recon"].mean() + snap["traces"]["elbo_kl"].mean()
    text = " ".join(re.sub(r"<[^>]+>", " ", title_of(fig)).split())  # the lines as read
    assert f"mean −ELBO {total:.4g} nats ({total / (784 * np.log(2)):.3g} bits/dim)" in text
    assert "held-out NLL 123.4 nats (IWAE)" in text
    fig = render_panel("vae", "vae_samples", snap, c)
    means, draws = fig.data[0].z, fig.data[1].z
    np.testing.assert_array_equal(means[:28, :28], snap["traces"]["sample_means"][0].reshape(28, 28))
    np.testing.assert_array_equal(draws[:28, :28], snap["traces"]["samples"][0].reshape(28, 28))


def test_mnist_labels_reach_the_latent_space_in_ten_colours(mnist_dir):
    import torch

    from core.data.mnist import MNIST
    from playground.draw import LABEL_COLORS
    from playground.runs import view_context

    data = MNIST(mnist_dir)
    shown = data.training_set(2000, seed=3)  # what a trainer with n_data=2000, seed 3 draws
    c = view_context(data, "mnist", shown, n=300, seed=3, n_data=2000)
    _, want = data.labelled_training_set(2000, seed=3)
    np.testing.assert_array_equal(c["labels"], want[:300].numpy())
    assert c["labels_name"] == "digit"

    snap = synthetic("vae", d=784)
    snap["traces"]["z_mean"] = torch.randn(300, 2).numpy()
    fig = render_panel("vae", "vae_latent", snap, c)
    digits = [t for t in fig.data if (t.name or "").startswith("digit ")]
    assert [t.name for t in digits] == [f"digit {k}" for k in range(10)]
    assert len({t.marker.color for t in digits}) == 10 and {t.marker.color for t in digits} <= set(LABEL_COLORS)
    for k, t in enumerate(digits):
        np.testing.assert_array_equal(t.x, snap["traces"]["z_mean"][c["labels"] == k, 0])
    assert fig.layout.showlegend


def test_the_digits_latent_space_names_each_class_on_the_plot_not_in_a_legend():
    """Ten labels in the legend took a 297 px panel's height and left the scatter a dot of one colour:
    each class has its own colour, and its label is written at the class's mean code instead."""
    snap = synthetic("vae", d=784)
    n = snap["traces"]["z_mean"].shape[0]
    labels = np.arange(n) % 10
    fig = render_panel("vae", "vae_latent", snap, ctx(data_shape=IMAGE_SHAPE, bounds=None, labels=labels,
                                                       labels_name="digit"))
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert len(shown) <= 3, shown
    colours = {trace(fig, f"digit {d}").marker.color for d in range(10)}
    assert len(colours) == 10
    names = trace(fig, "class labels")
    assert list(names.text) == [str(d) for d in range(10)] and names.mode == "text"
    z = snap["traces"]["z_mean"]
    for d in range(10):
        np.testing.assert_allclose([names.x[d], names.y[d]], z[labels == d, :2].mean(0), rtol=1e-5)
        assert names.textfont.color[d] == trace(fig, f"digit {d}").marker.color
