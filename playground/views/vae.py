"""VAE views: the decoder's manifold, the latent space, reconstructions, samples.

Trace keys (core.models.vae.VAE.traces): z_mean, z_var (n, latent); recon (n, D);
latent_grid (M*M, 2) a row-major grid over [-3, 3]^2 in the first two latent
dims (or (M, 1) when latent = 1); decoded_grid (M*M, D) the decoder mean there;
samples (n, D).
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from ..draw import digits as D
from . import FamilyView, Panel

LATENT_BOX = ((-4.0, 4.0), (-4.0, 4.0))
ELLIPSES = 40  # posteriors q(z|x) drawn as 1σ ellipses
RECON_LINKS = 200


def manifold(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    dec = V.array(tr, "decoded_grid", "the decoded latent grid")
    m = int(round(np.sqrt(dec.shape[0])))
    square = m * m == dec.shape[0]
    if V.is_image(ctx, snapshot):
        lo, hi = D.pixel_range(snapshot)
        cols = m if square else min(dec.shape[0], 16)
        imgs = D.images(dec, ctx, "decoded digits")
        # latent_grid rows run upwards in z_2; flip so the top row of the tile is the largest z_2
        if square:
            imgs = imgs.reshape(m, m, *imgs.shape[1:])[::-1].reshape(imgs.shape)
        return D.digits_figure([(D.tile(imgs, cols), "decoder mean over z ∈ [-3, 3]² (z₂ up, z₁ right)")],
                               "Decoder manifold over the latent grid", uirev, lo, hi)
    pts = V.points2d(dec, "the decoded grid")
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    data = [V.scatter(x_r, V.REAL, "data", 4, 0.35)] if x_r is not None else []
    if square:
        mx, my = V.mesh(pts, m, m, lines_each_way=m)
    else:  # latent = 1: the manifold is a curve
        mx, my = V.polylines(pts[None])
    data.append(V.lines(mx, my, V.MESH, "decoder(latent grid)", width=1.1, legend=True))
    data.append(V.scatter(pts, V.GEN, "grid nodes", 3, 0.8, legend=False))
    layout = V.base_layout("Decoder manifold: a grid over z ∈ [-3, 3]² mapped to x", uirev, note=V.hidden_note(pts))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def _labels(ctx: dict, n: int) -> np.ndarray | None:
    lab = ctx.get("labels")
    if lab is None:
        return None
    lab = np.asarray(lab).reshape(-1)
    return lab.astype(int) if lab.shape[0] == n else None


def latent(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    mu = V.array(tr, "z_mean", "the latent means")
    mu = mu.reshape(mu.shape[0], -1)
    k = mu.shape[1]
    labels = _labels(ctx, mu.shape[0])
    if k == 1:  # a line: spread the points by label so they can be seen
        y = labels.astype(np.float32) if labels is not None else np.zeros(mu.shape[0], np.float32)
        z = np.stack([mu[:, 0], (y - y.mean()) * 0.2], 1)
    else:
        z = mu[:, :2]
    data = [V.circles((1.0, 2.0), name="prior N(0, I): 1σ, 2σ")]
    var = V.optional(tr, "z_var")
    if var is not None and var.shape == mu.shape and k >= 2:
        t = np.linspace(0, 2 * np.pi, 25)
        sd = np.sqrt(np.maximum(var[:ELLIPSES, :2], 0))
        paths = z[:ELLIPSES, None, :] + sd[:, None, :] * np.stack([np.cos(t), np.sin(t)], 1)[None]
        ex, ey = V.polylines(paths)
        data.append(V.lines(ex, ey, "rgba(80,80,80,0.35)", "q(z|x): 1σ", width=0.8, legend=True))
    if labels is None:
        data.append(V.scatter(z, V.REAL, "E[z|x] of data", 4, 0.7))
    else:
        for lab in np.unique(labels)[:20]:
            sel = labels == lab
            color = V.NEUTRAL if lab < 0 else V.LABEL_COLORS[lab % len(V.LABEL_COLORS)]
            name = "unlabelled" if lab < 0 else f"{ctx.get('labels_name') or 'label'} {lab}"
            data.append(V.scatter(z[sel], color, name, 4, 0.75))
    dims = "" if k == 2 else (" (z vs label)" if k == 1 else f" (first 2 of {k} dims)")
    layout = V.base_layout(f"Latent space: encoder means vs the prior{dims}", uirev, note=V.hidden_note(z))
    V.plane_axes(layout, LATENT_BOX)
    return V.figure(data, layout)


def recon(snapshot: dict, ctx: dict, uirev: str):
    tr = snapshot.get("traces", {})
    rec = V.array(tr, "recon", "the reconstructions")
    if V.is_image(ctx, snapshot):
        lo, hi = D.pixel_range(snapshot)
        k = min(10, rec.shape[0])
        real = snapshot.get("data")
        if not isinstance(real, np.ndarray) or real.shape[0] < k:
            raise V.Unavailable("Reconstructions are shown beside the data, and no data came with this snapshot.")
        both = np.concatenate([D.images(real[:k].astype(np.float32), ctx, "data"), D.images(rec[:k], ctx, "recon")])
        return D.digits_figure([(D.tile(both, k), "top: data x; bottom: decoder mean at E[z|x]")],
                               "Reconstructions", uirev, lo, hi)
    r = V.points2d(rec, "the reconstructions")
    x_r = V.data_points(snapshot)
    box = V.bounds_of(ctx, x_r)
    data = []
    if x_r is not None and x_r.shape[0] == r.shape[0]:
        k = min(RECON_LINKS, r.shape[0])
        lx, ly = V.polylines(np.stack([x_r[:k], r[:k]], 1))
        data.append(V.lines(lx, ly, "rgba(120,120,120,0.45)", "x → recon", width=0.8, legend=True))
    if x_r is not None:
        data.append(V.scatter(x_r, V.REAL, "data x", 4, 0.55))
    data.append(V.scatter(r, V.GEN, "reconstruction", 4, 0.8))
    layout = V.base_layout("Reconstructions: decoder mean at E[z|x]", uirev, note=V.hidden_note(r))
    V.plane_axes(layout, box)
    return V.figure(data, layout)


def samples(snapshot: dict, ctx: dict, uirev: str):
    return D.samples_view(snapshot, ctx, uirev, key="samples", what="x ~ p(x|z), z ~ N(0, I)")


EQUATIONS = r""""
### VAE: the evidence lower bound

A latent $z \sim p(z) = \mathcal{N}(0, I)$ is decoded into $p_\theta(x \mid z)$; an encoder
$q_\phi(z \mid x) = \mathcal{N}(\mu(x), \operatorname{diag}\sigma^2(x))$ approximates the posterior. Training maximises
(Kingma & Welling 2014)

$$\log p(x) \;\ge\; \mathrm{ELBO}(x) = \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big] - \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big),$$

with $z = \mu + \sigma \odot \epsilon$, $\epsilon \sim \mathcal{N}(0, I)$ (the reparameterisation trick), and the KL in closed form

$$\mathrm{KL} = \tfrac{1}{2} \sum_j \big(\sigma_j^2 + \mu_j^2 - 1 - \log \sigma_j^2\big).$$

The loss is $\text{recon} + \beta \cdot \text{KL}$; $\beta = 1$ is the ELBO, $\beta > 1$ a $\beta$-VAE.

**What you see**
- `recon` is $\mathbb{E}_q[-\log p(x \mid z)]$; `kl` is $\mathrm{KL}(q(z \mid x) \,\|\, p(z))$; `elbo` $= -(\text{recon} + \text{kl})$; `loss` $= \text{recon} + \beta\,\text{kl}$.
- The metric *KL* is $\mathrm{KL}(p_\text{data} \,\|\, q)$ with $\log q(x)$ from the importance-weighted bound (IWAE, $K$ = `iw_samples`):
  an **estimate**, not an exact KL. The bound sits below $\log q(x)$ in expectation, so the estimate is biased upwards.
- *Decoder manifold*: the decoder mean over a grid of $z$: the surface the model believes data lie on.
- *Latent space*: encoder means $\mu(x)$ coloured by label, over the prior's $1\sigma$/$2\sigma$ circles; small ellipses are $q(z \mid x)$.
- *Reconstructions*: each data point and the decoder mean at its $\mu(x)$.
"""

VIEW = FamilyView(
    family="vae",
    panels=(
        Panel("vae_manifold", "Decoder manifold", manifold, needs=("decoded_grid",)),
        Panel("vae_latent", "Latent space", latent, needs=("z_mean",)),
        Panel("vae_recon", "Reconstructions", recon, needs=("recon",)),
        Panel("vae_samples", "Samples", samples, needs=("samples",)),
    ),
    equations=EQUATIONS.strip(),
    showcase=("vae", "eight_gaussians"),
)
