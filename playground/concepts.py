"""The Concepts tab: three small demos of the lecture notes, each answering its knobs at once.

    gradients            REINFORCE against the reparameterisation trick: variance against n
    likelihood vs samples  q = w p + (1 - w) noise: a likelihood within -log w of the truth, samples mostly noise
    classifiers          logistic regression against naive Bayes: decision lines and learning curves

core.concepts computes the numbers; here pure functions turn them into figures (playground.draw), handlers
turn knob values into figures and a line of numbers (never raising), and `concepts_tab` lays out the tab and
wires its knobs. The demos compute when the tab is first opened, not when the page loads.
"""

from __future__ import annotations

from functools import lru_cache

import gradio as gr
import numpy as np

from core.concepts import classifiers as CL
from core.concepts import gradients as GR
from core.concepts import likelihood_quality as LQ
from core.errors import PlaygroundError

from . import draw as V

LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
LR_COLOR, NB_COLOR, BAYES_COLOR = "#4e79a7", "#e15759", V.NEUTRAL
SF_COLOR, RP_COLOR = V.GEN, V.REAL
CLASS_COLORS = (V.LABEL_COLORS[1], V.LABEL_COLORS[3])  # orange and teal, clear of both lines

GRADIENT_EQUATIONS = r"""
### Two ways to differentiate an expectation

For $q_\mu = \mathcal{N}(\mu, s^2)$ and an objective $f$, the gradient $\nabla_\mu \mathbb{E}_{q_\mu}[f(z)]$ has two
unbiased Monte Carlo estimates from $n$ samples. The **score function** (REINFORCE, Williams 1992) needs only
values of $f$, with an optional baseline $b$:

$$\hat g_\text{SF} = \frac1n \sum_{i=1}^n \big(f(z_i) - b\big)\, \nabla_\mu \log q_\mu(z_i) = \frac1n \sum_i \big(f(z_i) - b\big) \frac{z_i - \mu}{s^2}, \qquad z_i \sim q_\mu.$$

The **pathwise** estimate (reparameterisation, Kingma & Welling 2014) writes $z = \mu + s\,\epsilon$ and
differentiates through $f$:

$$\hat g_\text{RP} = \frac1n \sum_{i=1}^n f'(\mu + s\,\epsilon_i), \qquad \epsilon_i \sim \mathcal{N}(0, 1).$$

For $f(z) = z^2$ the Gaussian moments $\mathbb{E}\epsilon^2 = 1$, $\mathbb{E}\epsilon^4 = 3$, $\mathbb{E}\epsilon^6 = 15$ give

$$\operatorname{Var}\hat g_\text{RP} = \frac{4 s^2}{n}, \qquad \operatorname{Var}\hat g_\text{SF} = \frac1n\Big(\frac{\mu^4}{s^2} + 14\mu^2 + 15 s^2\Big),$$

and $\frac1n(8\mu^2 + 10 s^2)$ with the baseline $b = \mathbb{E}_q f = \mu^2 + s^2$. **Left:** the variance of
each estimator over repeated draws (dots) against the closed form (lines) as $n$ grows: both fall as $1/n$,
the score function's stays higher. **Right:** the spread of single-sample estimates around the true gradient.
Nothing is trained here: it is the noise an optimiser (a VAE's encoder, a policy) would have to live with.
"""

LIKELIHOOD_EQUATIONS = r"""
### A good likelihood does not make good samples (Theis, van den Oord & Bethge 2016)

Take the true density $p$ of a dataset and mix it with noise $u$ (here uniform on the plotted box):

$$q(x) = w\, p(x) + (1 - w)\, u(x) \;\ge\; w\, p(x) \quad\Longrightarrow\quad \log q(x) \ge \log p(x) - \log\tfrac1w \;\text{ at every } x.$$

Averaged over the data, the log-likelihood of $q$ is at most $\log\frac1w$ below the truth's:

$$0 \le \mathrm{KL}(p \,\|\, q) = \mathbb{E}_p[\log p(x) - \log q(x)] \le \log\tfrac1w \qquad (w = 0.01:\ \log 100 \approx 4.61 \text{ nats}),$$

yet a fraction $1 - w$ of its samples are noise. For images, whose log-likelihoods run to thousands of nats,
4.61 nats is lost in the digits. **Left:** samples of $q$: the few drawn from $p$ and the many drawn from the
noise. **Right:** the gap $\mathbb{E}_p[\log p - \log q]$ measured on test points of $p$ for every weight $w$,
under the bound $\log\frac1w$; the dot is the weight chosen. Nothing is minimised: $q$ is built, not trained.
"""

CLASSIFIER_EQUATIONS = r"""
### Discriminative against generative classifiers (Ng & Jordan 2002)

**Logistic regression** models $p(y \mid x) = \sigma(w^\top x + b)$ and minimises the conditional negative
log-likelihood (with a small ridge $\lambda = 10^{-2}$, which keeps separable training sets finite) by Newton's method:

$$\min_{w, b}\; -\sum_i \big[y_i \log \sigma(a_i) + (1 - y_i)\log(1 - \sigma(a_i))\big] + \tfrac\lambda2 \lVert w\rVert^2, \qquad a_i = w^\top x_i + b.$$

**Gaussian naive Bayes** models the joint $p(x, y) = \pi_y \prod_j \mathcal{N}(x_j; \mu_{yj}, \sigma_j^2)$ and
maximises its likelihood in closed form (class frequencies, class means, pooled within-class variances);
Bayes' rule then gives linear log-odds, $w_j = (\mu_{1j} - \mu_{0j})/\sigma_j^2$.

The *correlated Gaussians* have classes $\mathcal{N}(\pm(\tfrac32, 0), \Sigma)$ with
$\Sigma = \begin{pmatrix}1 & \rho\\ \rho & 1\end{pmatrix}$: naive Bayes ignores $\rho$ and converges to the wrong
line, while the best rule $w^\star = \Sigma^{-1}(\mu_1 - \mu_0)$ is one logistic regression can reach. The error of
a line is exact for them: $\tfrac12\Phi\big(-\tfrac{w^\top\mu_1 + b}{\sqrt{w^\top\Sigma w}}\big) + \tfrac12\Phi\big(\tfrac{w^\top\mu_0 + b}{\sqrt{w^\top\Sigma w}}\big)$. **Left:** one training set and both
fitted lines (and the best one, dashed). **Right:** test error against training points per class, averaged
over repeated training sets: naive Bayes gets to its asymptote sooner, logistic regression to a lower one.
"""


# ---- figures ---------------------------------------------------------------------------
def _log_axis(title: str) -> dict:
    return dict(type="log", title=dict(text=title, standoff=4, font={"size": 11}), tickformat="~g")


def gradient_variance_figure(r: GR.GradientVariance):
    """Variance of both estimators against n on log-log axes: Monte Carlo dots, closed-form lines."""
    title = f"Variance of the gradient estimate, {GR.FUNCTIONS[r.f]}"
    note = f"μ = {r.mu:g}, s = {r.s:g}; dots: {r.repeats} repeats each; lines: closed form"
    layout = V.base_layout(title, "grad-var", note=note)
    layout["xaxis"] = _log_axis("samples n")
    layout["yaxis"] = _log_axis("variance")
    sf_name = "score function" + (f" − baseline {r.baseline:.3g}" if r.baseline else "")
    data = []
    for name, mc, exact, color in ((sf_name, r.var_sf, r.exact_sf, SF_COLOR),
                                   ("pathwise", r.var_rp, r.exact_rp, RP_COLOR)):
        data.append(dict(type="scatter", mode="lines", x=r.n, y=exact, name=f"{name}: closed form", legendgroup=name,
                         line=dict(color=color, width=1.6), hovertemplate="n=%{x}<br>Var=%{y:.3g}<extra></extra>"))
        keep = mc > 0  # a constant estimator (f' constant) has no variance to draw on a log axis
        data.append(dict(type="scatter", mode="markers", x=r.n[keep], y=mc[keep], name=f"{name}: Monte Carlo",
                         legendgroup=name, marker=dict(color=color, size=7, symbol="circle-open"),
                         hovertemplate="n=%{x}<br>Var=%{y:.3g}<extra></extra>"))
    return V.figure(data, layout)


def gradient_spread_figure(r: GR.GradientVariance):
    """Histograms of single-sample estimates of both estimators, with the true gradient."""
    layout = V.base_layout("Single-sample estimates", "grad-spread",
                           note=f"true gradient {r.grad:.3g}; the score function's spread {r.single_sf.std():.3g}, "
                                f"the pathwise one's {r.single_rp.std():.3g}")
    lo, hi = np.percentile(np.concatenate([r.single_sf, r.single_rp]), [1, 99])
    edges = np.linspace(min(lo, r.grad) - 0.1, max(hi, r.grad) + 0.1, 41)
    data = []
    for name, g, color in (("score function", r.single_sf, SF_COLOR), ("pathwise", r.single_rp, RP_COLOR)):
        counts, _ = np.histogram(np.clip(g, edges[0], edges[-1]), edges)
        data.append(dict(type="bar", x=0.5 * (edges[1:] + edges[:-1]), y=counts / len(g), name=name, opacity=0.6,
                         marker=dict(color=color, line=dict(width=0)), width=float(edges[1] - edges[0]),
                         hovertemplate="g=%{x:.3g}<br>share=%{y:.3f}<extra></extra>"))
    peak = max(float(d["y"].max()) for d in data)
    data.append(V.lines(np.array([r.grad, r.grad]), np.array([0.0, peak]), "#333333", "true gradient", width=1.6,
                        legend=True, dash="dash"))
    layout["barmode"] = "overlay"
    layout["xaxis"] = dict(title=dict(text="estimate of dE[f]/dμ (ends: clipped)", standoff=4, font={"size": 11}))
    layout["yaxis"] = dict(title=dict(text="share of estimates", standoff=4, font={"size": 11}))
    return V.figure(data, layout)


def likelihood_samples_figure(r: LQ.LikelihoodGap):
    """Samples of q on the data plane: the share from p and the share from the noise."""
    layout = V.base_layout(f"Samples of q = {r.w:g} p + {1 - r.w:g} noise", "lq-samples",
                           note=f"{r.dataset}: {int(r.from_p.sum())} of {len(r.from_p)} samples from p")
    V.plane_axes(layout, r.bounds)
    data = [V.scatter(r.samples[~r.from_p], V.NEUTRAL, "from the noise u", size=3.5, opacity=0.5),
            V.scatter(r.samples[r.from_p], V.REAL, "from the data p", size=5, opacity=0.9)]
    return V.figure(data, layout)


def likelihood_gap_figure(r: LQ.LikelihoodGap):
    """The gap E_p[log p - log q] against w, the bound -log w above it, the chosen w marked."""
    layout = V.base_layout("Average log-likelihood lost by q", "lq-gap",
                           note=f"at w = {r.w:g}: gap {r.gap:.3f} nats, bound log(1/w) = {r.bound:.3f}")
    layout["xaxis"] = _log_axis("weight w of the data in q")
    layout["yaxis"] = dict(title=dict(text="nats", standoff=4, font={"size": 11}), rangemode="tozero")
    data = [V.lines(r.curve_w, -np.log(r.curve_w), V.BASE, "bound log(1/w)", width=1.6, legend=True, dash="dash"),
            V.lines(r.curve_w, r.curve_gap, V.GEN, "gap E_p[log p − log q]", width=2.0, legend=True),
            dict(type="scatter", mode="markers", x=[r.w], y=[r.gap], name="chosen w", showlegend=False,
                 marker=dict(color=V.GEN, size=10), hovertemplate="w=%{x:.3g}<br>gap=%{y:.3f}<extra></extra>")]
    return V.figure(data, layout)


def _rule_line(w: np.ndarray, b: float, box) -> tuple[np.ndarray, np.ndarray]:
    """The line w . x + b = 0 clipped to the box, as two end points (nan if it misses it)."""
    (x0, x1), (y0, y1) = box
    if abs(w[1]) >= abs(w[0]):
        xs = np.array([x0, x1])
        return xs, -(w[0] * xs + b) / w[1]
    if w[0] == 0:
        return np.full(2, np.nan), np.full(2, np.nan)
    ys = np.array([y0, y1])
    return -(w[1] * ys + b) / w[0], ys


def classifier_plane_figure(r: CL.DecisionRules):
    """Test points faintly, the training set boldly, and the decision line of each classifier."""
    n = len(r.y_train) // 2
    layout = V.base_layout(f"Decision lines from {n} points per class", "cl-plane",
                           note=f"test error: logistic regression {r.err_lr:.3f}, naive Bayes {r.err_nb:.3f}")
    V.plane_axes(layout, r.bounds)
    data = []
    for c in (0, 1):
        data.append(V.scatter(r.x_test[r.y_test == c], CLASS_COLORS[c], f"class {c} (test)", size=3,
                              opacity=0.25, legend=False))
    for c in (0, 1):
        data.append(V.scatter(r.x_train[r.y_train == c], CLASS_COLORS[c], f"class {c}", size=8, opacity=1.0,
                              symbol="circle" if c == 0 else "diamond"))
    rules = [("logistic regression", r.rule_lr, LR_COLOR, "solid"), ("naive Bayes", r.rule_nb, NB_COLOR, "solid")]
    if r.rule_bayes is not None:
        rules.append(("best (Bayes) rule", r.rule_bayes, BAYES_COLOR, "dash"))
    for name, (w, b), color, dash in rules:
        xs, ys = _rule_line(np.asarray(w), b, r.bounds)
        data.append(V.lines(xs, ys, color, name, width=2.2, legend=True, dash=dash))
    return V.figure(data, layout)


def classifier_curves_figure(r: CL.ClassifierCurves):
    """Test error against training points per class: both learning curves with standard errors."""
    layout = V.base_layout("Learning curves", "cl-curves", note=f"test error averaged over {r.repeats} training sets")
    layout["xaxis"] = _log_axis("training points per class")
    layout["yaxis"] = dict(title=dict(text="test error", standoff=4, font={"size": 11}))
    data = []
    for name, err, se, color in (("logistic regression", r.err_lr, r.se_lr, LR_COLOR),
                                 ("naive Bayes", r.err_nb, r.se_nb, NB_COLOR)):
        data.append(dict(type="scatter", mode="lines+markers", x=r.sizes, y=err, name=name,
                         line=dict(color=color, width=2), marker=dict(size=5),
                         error_y=dict(type="data", array=se, visible=True, thickness=1, width=2, color=color),
                         hovertemplate=f"{name}<br>n=%{{x}} per class<br>error=%{{y:.3f}}<extra></extra>"))
    if r.bayes_error is not None:
        data.append(V.lines(np.array([r.sizes[0], r.sizes[-1]], dtype=float), np.full(2, r.bayes_error), BAYES_COLOR,
                            f"Bayes error {r.bayes_error:.3f}", width=1.4, legend=True, dash="dash"))
    return V.figure(data, layout)


# ---- handlers: knob values in, figures and a line of numbers out, never an exception ----------
def _failed(e: Exception, n: int):
    message = str(e) if isinstance(e, PlaygroundError) else f"could not compute this ({type(e).__name__}: {e})"
    return (*[V.empty_figure(message) for _ in range(n)], f"**{message}**")


def on_gradients(f: str, mu: float, s: float, baseline: bool):
    try:
        r = GR.gradient_variance(f, float(mu), float(s), bool(baseline))
    except Exception as e:  # noqa: BLE001 - a page shows a message, never a traceback
        return _failed(e, 2)
    v_sf, v_rp = r.exact_sf[0], r.exact_rp[0]
    ratio = f"{v_sf / v_rp:.3g}×" if v_rp > 0 else "infinitely"
    summary = (f"True gradient **{r.grad:.4g}**. One sample's variance: score function **{v_sf:.4g}**, "
               f"pathwise **{v_rp:.4g}**, so the score function needs {ratio} as many samples for the same precision.")
    return gradient_variance_figure(r), gradient_spread_figure(r), summary


def on_likelihood(dataset: str, w: float):
    try:
        r = LQ.likelihood_gap(dataset, float(w))
    except Exception as e:  # noqa: BLE001
        return _failed(e, 2)
    summary = (f"Average log-likelihood on {len(r.log_p)} test points of {dataset}: truth **{r.log_p.mean():.3f}**, "
               f"q **{r.log_q.mean():.3f}** nats; the gap **{r.gap:.3f}** stays under log(1/w) = **{r.bound:.3f}**, "
               f"while {100 * (1 - r.from_p.mean()):.0f}% of q's samples are noise.")
    return likelihood_samples_figure(r), likelihood_gap_figure(r), summary


@lru_cache(maxsize=16)
def _curves(source: str, rho: float) -> CL.ClassifierCurves:
    return CL.classifier_curves(source, rho, repeats=30)


def on_classifiers(source: str, rho: float, per_class: int):
    try:
        rules = CL.decision_rules(source, float(rho), int(per_class))
        curves = _curves(source, round(float(rho), 3) if source == "correlated Gaussians" else 0.0)
    except Exception as e:  # noqa: BLE001
        return _failed(e, 2)
    best = "" if curves.bayes_error is None else f" (the best possible: {curves.bayes_error:.3f})"
    summary = (f"With {curves.sizes[0]} points per class: naive Bayes **{curves.err_nb[0]:.3f}**, logistic "
               f"regression **{curves.err_lr[0]:.3f}**; with {curves.sizes[-1]}: naive Bayes "
               f"**{curves.err_nb[-1]:.3f}**, logistic regression **{curves.err_lr[-1]:.3f}**{best}.")
    return classifier_plane_figure(rules), classifier_curves_figure(curves), summary


def on_open(*values):
    """Every demo at once, from the knobs' current values (when the tab is opened)."""
    g, lq, cl = values[:4], values[4:6], values[6:]
    return (*on_gradients(*g), *on_likelihood(*lq), *on_classifiers(*cl))


# ---- the tab -------------------------------------------------------------------------------
def concepts_tab() -> gr.Tab:
    """A "Concepts" tab inside the current gr.Tabs, its knobs wired to redraw their demo at once."""
    private = {"api_visibility": "private", "show_progress": "hidden"}
    with gr.Tab("Concepts") as tab:
        gr.Markdown("Three ideas from the lecture notes, computed as you move the knobs.")
        with gr.Accordion("REINFORCE against the reparameterisation trick", open=True):
            with gr.Row():
                f = gr.Dropdown(list(GR.FUNCTIONS), value="z^2", label="objective f", scale=1)
                mu = gr.Slider(-2.0, 2.0, value=1.0, step=0.1, label="μ", scale=1)
                s = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="s", scale=1)
                baseline = gr.Checkbox(value=False, label="baseline b = E_q[f]", scale=1,
                                       info="a control variate for the score function")
            with gr.Row():
                grad_var, grad_spread = gr.Plot(show_label=False), gr.Plot(show_label=False)
            grad_text = gr.Markdown("")
            with gr.Accordion("Equations", open=False):
                gr.Markdown(GRADIENT_EQUATIONS, latex_delimiters=LATEX)
        with gr.Accordion("Likelihood against sample quality", open=True):
            with gr.Row():
                dataset = gr.Dropdown(LQ.density_datasets(), value="eight_gaussians", label="dataset p", scale=1)
                w = gr.Slider(0.001, 1.0, value=0.01, step=0.001, label="weight w of the data in q", scale=2)
            with gr.Row():
                lq_samples, lq_gap = gr.Plot(show_label=False), gr.Plot(show_label=False)
            lq_text = gr.Markdown("")
            with gr.Accordion("Equations", open=False):
                gr.Markdown(LIKELIHOOD_EQUATIONS, latex_delimiters=LATEX)
        with gr.Accordion("Discriminative against generative classifiers", open=True):
            with gr.Row():
                source = gr.Dropdown(list(CL.SOURCES), value="correlated Gaussians", label="data", scale=1)
                rho = gr.Slider(-0.9, 0.9, value=0.3, step=0.05, label="correlation ρ (Gaussians)", scale=1)
                per_class = gr.Slider(2, 200, value=10, step=1, label="training points per class (left)", scale=1)
            with gr.Row():
                cl_plane, cl_curves = gr.Plot(show_label=False), gr.Plot(show_label=False)
            cl_text = gr.Markdown("")
            with gr.Accordion("Equations", open=False):
                gr.Markdown(CLASSIFIER_EQUATIONS, latex_delimiters=LATEX)

    g_in, g_out = [f, mu, s, baseline], [grad_var, grad_spread, grad_text]
    lq_in, lq_out = [dataset, w], [lq_samples, lq_gap, lq_text]
    cl_in, cl_out = [source, rho, per_class], [cl_plane, cl_curves, cl_text]
    tab.select(on_open, g_in + lq_in + cl_in, g_out + lq_out + cl_out, **private)
    for inputs, outputs, fn in ((g_in, g_out, on_gradients), (lq_in, lq_out, on_likelihood),
                                (cl_in, cl_out, on_classifiers)):
        for comp in inputs:
            event = comp.release if isinstance(comp, gr.Slider) else comp.input
            event(fn, inputs, outputs, trigger_mode="always_last", **private)
    return tab
