"""The VAE view: the latent space and the decoder's manifold."""

from __future__ import annotations


import numpy as np

from playground.views import render_panel
from tests.playground.views.helpers import (M, N,
                                            ctx, synthetic, trace)


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
