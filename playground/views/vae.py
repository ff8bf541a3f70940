"""VAE views: the decoder's manifold, the latent space, reconstructions, samples, the ELBO's terms.

Trace keys (core.models.vae.VAE.traces): z_mean, z_var (n, latent); recon (r, D);
latent_grid (M*M, 2) a row-major grid over [-3, 3]^2 in the first two latent
dims (or (M, 1) when latent = 1); decoded_grid (M*M, D) the decoder mean there;
samples, sample_means (s, D): x ~ p(x|z) and E[x|z] at the same z; elbo_recon,
elbo_kl (e,): the -ELBO terms in nats of the first e examples. On digits the labels in
ctx["labels"] colour the latent space and split the ELBO's terms by digit.
"""

from __future__ import annotations

import numpy as np

from .. import draw as V
from ..draw import digits as D
from . import FamilyView, Panel

LATENT_BOX = ((-4.0, 4.0), (-4.0, 4.0))
ELLIPSES = 40  # posteriors q(z|x) drawn as 1σ ellipses
RECON_LINKS = 200


def _latent_dims(tr: dict) -> int | None:
    mu = tr.get("z_mean") if isinstance(tr, dict) else None
    return int(np.asarray(mu).shape[-1]) if mu is not None and np.ndim(mu) == 2 else None


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
        k = _latent_dims(tr)
        where = "z ∈ [-3, 3]² (z₂ up, z₁ right)" if k in (None, 2) else (
            "z₁ ∈ [-3, 3]" if k == 1 else f"z₁, z₂ ∈ [-3, 3], the other {k - 2} at 0")
        return D.digits_figure([(D.tile(imgs, cols), f"decoder mean over {where}")],
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


def _latent_note(k: int) -> str:
    """Which latent size shows what, for digits: 2 is the whole latent space, more dims a slice."""
    if k == 2:
        return "latent = 2: the whole latent space; latent = 16 gives sharper digits"
    if k > 2:
        return f"latent = {k}: a slice through the first 2 dims; latent = 2 shows it all"
    return ""


def _labels(ctx: dict, n: int, first: bool = False) -> np.ndarray | None:
    """The labels of the n examples drawn, or with first, of the first n of those in ctx."""
    lab = ctx.get("labels")
    if lab is None:
        return None
    lab = np.asarray(lab).reshape(-1)
    if first and lab.shape[0] >= n:
        lab = lab[:n]
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
        # one colour per class, its label written at the class's mean code: ten legend entries would take
        # a narrow panel's height and leave the scatter a dot
        names, centres, colours = [], [], []
        for lab in np.unique(labels)[:20]:
            sel = labels == lab
            color = V.NEUTRAL if lab < 0 else V.LABEL_COLORS[lab % len(V.LABEL_COLORS)]
            name = "unlabelled" if lab < 0 else f"{ctx.get('labels_name') or 'label'} {lab}"
            data.append(V.scatter(z[sel], color, name, 4, 0.75, legend=False))
            if lab >= 0 and np.isfinite(z[sel]).all(1).any():
                names.append(str(lab))
                centres.append(np.nanmean(z[sel], 0))
                colours.append(color)
        if names:
            c = np.array(centres)
            data.append(dict(type="scatter", mode="text", x=c[:, 0], y=c[:, 1], text=names, name="class labels", showlegend=False, hoverinfo="skip",
                             textfont=dict(color=colours, size=15, family="Arial Black, Arial, sans-serif")))
    dims = "" if k == 2 else (" (z vs label)" if k == 1 else f" (first 2 of {k} dims)")
    note = (_latent_note(k) if V.is_image(ctx, snapshot) else "") + V.hidden_note(z)
    layout = V.base_layout(f"Latent space: encoder means vs the prior{dims}", uirev, note=note)
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
        return D.digits_figure([(D.tile(both, k), "top: digits x; bottom: reconstructions")],
                               "Reconstructions: the decoder mean at E[z|b], b = x binarized", uirev, lo, hi)
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
    tr = snapshot.get("traces", {})
    means = V.optional(tr, "sample_means")
    if not V.is_image(ctx, snapshot) or means is None:
        return D.samples_view(snapshot, ctx, uirev, key="samples", what="x ~ p(x|z), z ~ N(0, I)")
    s = V.array(tr, "samples", "samples")
    lo, hi = D.pixel_range(snapshot)
    k = min(64, s.shape[0], means.shape[0])
    cols = min(8, k)
    return D.digits_figure([(D.tile(D.images(means[:k], ctx, "decoder means"), cols), "E[x|z], z ~ N(0, I)"),
                            (D.tile(D.images(s[:k], ctx, "samples"), cols), f"x ~ p(x|z), step {snapshot.get('step', 0)}")],
                           "Samples: the decoder's means and its draws", uirev, lo, hi)


def elbo(snapshot: dict, ctx: dict, uirev: str):
    """-ELBO = recon + KL per example, as stacked bars: over all shown examples, then by label."""
    tr = snapshot.get("traces", {})
    recon = V.array(tr, "elbo_recon", "the reconstruction terms").reshape(-1)
    kl = V.array(tr, "elbo_kl", "the KL terms").reshape(-1)
    if recon.shape != kl.shape:
        raise V.Unavailable(f"The ELBO's terms disagree in length ({recon.shape[0]} recon, {kl.shape[0]} KL).")
    ok = np.isfinite(recon) & np.isfinite(kl)
    if not ok.any():
        raise V.Unavailable("The ELBO's terms are all NaN or infinite: lower the learning rate and restart.")
    labels = _labels(ctx, recon.shape[0], first=True)  # the terms are of the first e examples
    groups = [("all", ok)]
    if labels is not None:
        groups += [(str(lab), ok & (labels == lab)) for lab in np.unique(labels[labels >= 0])[:20]]
    groups = [(name, sel) for name, sel in groups if sel.any()]
    names = [name for name, _ in groups]
    r = np.array([recon[sel].mean() for _, sel in groups])
    q = np.array([kl[sel].mean() for _, sel in groups])
    data = [
        dict(type="bar", x=names, y=r, name="recon = E_q[−log p(x|z)]", marker=dict(color=V.GEN),
             hovertemplate="recon=%{y:.4g} nats<extra></extra>"),
        dict(type="bar", x=names, y=q, name="KL(q(z|x) ‖ p(z))", marker=dict(color=V.BASE),
             hovertemplate="KL=%{y:.4g} nats<extra></extra>"),
    ]
    total = float(r[0] + q[0])
    note = f"mean −ELBO {total:.4g} nats"
    if V.is_image(ctx, snapshot):  # per pixel, in the unit of image likelihoods
        shape = ctx.get("data_shape") or np.shape(snapshot.get("data"))[1:]
        note += f" ({total / (int(np.prod(shape)) * np.log(2)):.3g} bits/dim)"
    nll = (snapshot.get("metrics") or {}).get("nll") if isinstance(snapshot.get("metrics"), dict) else None
    if isinstance(nll, (int, float)) and np.isfinite(nll):
        note += f"; held-out NLL {nll:.4g} nats (IWAE)"
    by = ctx.get("labels_name") or "label"
    layout = V.base_layout(f"ELBO terms per example{f' and by {by}' if labels is not None else ''}: "
                           "−ELBO = recon + KL", uirev, note=note + V.hidden_note(np.where(ok, 0.0, np.nan)))
    layout["barmode"] = "stack"
    layout["xaxis"] = dict(type="category", title=dict(text=by if labels is not None else "", standoff=4))
    layout["yaxis"] = dict(title=dict(text="nats per example", standoff=4), rangemode="tozero")
    return V.figure(data, layout)


EQUATIONS = r""""
### VAE: the evidence lower bound

A latent $z \sim p(z) = \mathcal{N}(0, I)$ is decoded into $p_\theta(x \mid z)$; an encoder
$q_\phi(z \mid x) = \mathcal{N}(\mu(x), \operatorname{diag}\sigma^2(x))$ approximates the posterior. Training maximises
(Kingma & Welling 2014)

$$\log p(x) \;\ge\; \mathrm{ELBO}(x) = \mathbb{E}_{q_\phi(z \mid x)}\big[\log p_\theta(x \mid z)\big] - \mathrm{KL}\big(q_\phi(z \mid x) \,\|\, p(z)\big),$$

with $z = \mu + \sigma \odot \epsilon$, $\epsilon \sim \mathcal{N}(0, I)$ (the reparameterisation trick), and the KL in closed form

$$\mathrm{KL} = \tfrac{1}{2} \sum_j \big(\sigma_j^2 + \mu_j^2 - 1 - \log \sigma_j^2\big).$$

The loss is $\text{recon} + \beta \cdot \text{KL}$; $\beta = 1$ is the ELBO, $\beta > 1$ a $\beta$-VAE.

### The importance-weighted bound: log p(x) as an estimate

With $K$ samples $z_k \sim q_\phi(z \mid x)$ (Burda et al. 2016, IWAE),

$$\log p(x) \;\ge\; \mathcal{L}_K(x) = \mathbb{E}\Big[\log \frac{1}{K} \sum_{k=1}^{K} \frac{p_\theta(x, z_k)}{q_\phi(z_k \mid x)}\Big],
\qquad \mathcal{L}_1 = \mathrm{ELBO} \le \mathcal{L}_K \le \mathcal{L}_{K+1} \to \log p(x).$$

The model's $\log p(x)$ is one draw of the sum inside, $K$ = `iw_samples`: an **estimate** (labelled so beside the NLL),
below $\log p(x)$ on average.

### Digits: nats and bits per dimension

On MNIST the decoder is Bernoulli, $p_\theta(b \mid z) = \prod_i m_i^{b_i} (1 - m_i)^{1 - b_i}$, over digits binarized
afresh at every batch, $b_i \sim \mathrm{Bernoulli}(x_i)$; the encoder and decoder are small convolutional nets. Then
$-\log p(b)$ is in **nats per digit**, the unit of the literature (a VAE trained on the ELBO: about 86.8 nats,
Burda et al. 2016), and

$$\text{bits/dim} = \frac{-\log p(b)}{D \ln 2}, \qquad D = 784.$$

`latent` = 2 lets the panels show the whole latent space (the decoder's grid, the encoded digits); a larger latent,
16 say, gives sharper digits and a lower NLL, and the panels then show a slice through its first two dimensions.

**What you see**
- `recon` is $\mathbb{E}_q[-\log p(x \mid z)]$; `kl` is $\mathrm{KL}(q(z \mid x) \,\|\, p(z))$; `elbo` $= -(\text{recon} + \text{kl})$; `loss` $= \text{recon} + \beta\,\text{kl}$.
- The metric *KL* is $\mathrm{KL}(p_\text{data} \,\|\, q)$ with $\log q(x)$ from the importance-weighted bound:
  an **estimate**, not an exact KL. The bound sits below $\log q(x)$ in expectation, so the estimate is biased upwards.
- *Decoder manifold*: the decoder mean over a grid of $z$: the surface (or, for digits, the gallery) the model believes data lie on.
- *Latent space*: encoder means $\mu(x)$ coloured by label (the digit, on MNIST), over the prior's $1\sigma$/$2\sigma$ circles; small ellipses are $q(z \mid x)$.
- *Reconstructions*: each example and the decoder mean at its $\mu(x)$.
- *Samples*: for digits, the decoder means $\mathbb{E}[x \mid z]$ beside draws $x \sim p(x \mid z)$ at the same $z \sim \mathcal{N}(0, I)$.
- *ELBO terms*: each example's recon and KL stacked into its $-\mathrm{ELBO}$, over all examples and by label: which digits cost the most nats.
"""

VIEW = FamilyView(
    family="vae",
    panels=(
        Panel("vae_manifold", "Decoder manifold", manifold, wide=True, needs=("decoded_grid",),
              about=("The decoder's mean over a regular grid of latent codes z: on digits a map of which region "
                     "of z becomes which digit, on 2D data the grid mapped into data space. Watch it organise "
                     "into smooth regions; if everything looks alike, β is pulling the codes too hard towards the "
                     "prior.")),
        Panel("vae_latent", "Latent space", latent, needs=("z_mean",),
              about=("The encoder means E[z|x] of the data, coloured by label or mode where the data has them, a "
                     "few posteriors q(z|x) as 1σ ellipses, and the prior's 1σ and 2σ circles. Watch classes "
                     "separate while the cloud stays inside the prior; raising β squeezes everything towards N(0, "
                     "I) and blurs the classes together.")),
        Panel("vae_recon", "Reconstructions", recon, needs=("recon",),
              about=("Data and their reconstructions, decoded from each mean code. The links from x to its "
                     "reconstruction should shrink as training goes on; reconstructions smoother than the data "
                     "are normal for a VAE, whose decoder averages over q(z|x).")),
        Panel("vae_samples", "Samples", samples, needs=("samples",),
              about=("New samples: z ~ N(0, I), then the decoder. They look worse than reconstructions where the "
                     "prior puts mass that the encoder never uses, the holes in the latent space; a small KL term "
                     "means fewer holes.")),
        Panel("vae_elbo", "ELBO terms", elbo, needs=("elbo_recon", "elbo_kl"),
              about=("The two terms of −ELBO per example in nats: reconstruction −E_q[log p(x|z)] and KL(q(z|x) ‖ "
                     "p(z)), overall and by label. Their sum is the loss. A KL near 0 means posterior collapse: "
                     "the decoder has learned to ignore z.")),
    ),
    equations=EQUATIONS.strip(),
    showcase=("vae", "eight_gaussians"),
)
