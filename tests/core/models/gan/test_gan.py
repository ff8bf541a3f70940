"""GAN: the objectives against the papers' formulas and optima, with the
generator replaced by a known Gaussian so every optimum has a closed form."""

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from core.models.gan import objectives as gan_losses
from core.errors import LogProbUnavailable
from core.models.gan import GAN, GANConfig, LOSSES, MMD_SIGMAS
from core.registry import build_model, model_config, model_names, train_config

_f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
P, Q = Normal(_f64(0.0), _f64(1.0)), Normal(_f64(0.5), _f64(1.2))  # data and (fixed) model distributions on the line
LOG2 = math.log(2.0)


def _gan_1d(loss: str, **cfg) -> GAN:
    """A 1D GAN whose generator is fixed to z -> 0.5 + 1.2 z, i.e. p_g = Q exactly."""
    m = GAN((1,), GANConfig(loss=loss, latent=1, hidden=32, layers=2, **cfg)).double()
    m.G = nn.Linear(1, 1).double().requires_grad_(False)
    with torch.no_grad():
        m.G.weight.fill_(Q.scale)
        m.G.bias.fill_(Q.loc)
    return m


class Fixed(nn.Module):
    """A critic given as a function of x: (n, 1) -> (n, 1)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _log_u(x):
    """log p(x)/q(x) for the two Gaussians."""
    return P.log_prob(x) - Q.log_prob(x)


def _quadrature(fn):
    """int fn(x) dx on the line (the densities are negligible beyond |x| = 15)."""
    x = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    return (fn(x).sum() * (x[1] - x[0])).item()


def _divergence(f):
    """D_f(P || Q) = int q f(p / q) dx."""
    return _quadrature(lambda x: Q.log_prob(x).exp() * f(_log_u(x).exp()))


# ---- the table of objectives ---------------------------------------------------

# The paper's forms (Nowozin et al. 2016, Tables 1-2): f, f'(u) (the optimal T*),
# the output activation g_f, its inverse, and the conjugate f*.
F_TABLE = {
    "kl": dict(f=lambda u: u * u.log(), f_prime=lambda u: 1 + u.log(), g=lambda v: v, g_inv=lambda t: t,
               fstar=lambda t: (t - 1).exp()),
    "reverse_kl": dict(f=lambda u: -u.log(), f_prime=lambda u: -1 / u, g=lambda v: -(-v).exp(), g_inv=lambda t: -(-t).log(),
                       fstar=lambda t: -1 - (-t).log()),
    "js": dict(f=lambda u: -(u + 1) * ((1 + u) / 2).log() + u * u.log(), f_prime=lambda u: (2 * u / (1 + u)).log(),
               g=lambda v: LOG2 - (1 + (-v).exp()).log(), g_inv=lambda t: -(2 * (-t).exp() - 1).log(),
               fstar=lambda t: -(2 - t.exp()).log()),
    "pearson": dict(f=lambda u: (u - 1) ** 2, f_prime=lambda u: 2 * (u - 1), g=lambda v: v, g_inv=lambda t: t,
                    fstar=lambda t: t**2 / 4 + t),
    "hellinger": dict(f=lambda u: (u.sqrt() - 1) ** 2, f_prime=lambda u: 1 - u.rsqrt(), g=lambda v: 1 - (-v).exp(),
                      g_inv=lambda t: -(1 - t).log(), fstar=lambda t: t / (1 - t)),
}


def test_objective_table_matches_the_papers_formulas():
    torch.manual_seed(0)
    r, f = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    D = lambda v: torch.sigmoid(v)  # noqa: E731

    def check(loss, d_want, g_want, div="js"):
        obj = gan_losses.objective(loss, div)
        d_loss, _, _ = obj.d(r, f)
        assert torch.allclose(d_loss, d_want, rtol=1e-10), loss
        assert torch.allclose(obj.g(f, r), g_want, rtol=1e-10), loss

    d_gan = -(D(r).log().mean() + (1 - D(f)).log().mean())
    check("gan", d_gan, (1 - D(f)).log().mean())  # saturating: G minimises log(1 - D)
    check("nsgan", d_gan, -D(f).log().mean())  # G maximises log D
    check("lsgan", 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean(), 0.5 * ((f - 1) ** 2).mean())
    check("wgan", f.mean() - r.mean(), -f.mean())
    check("wgan_gp", f.mean() - r.mean(), -f.mean())
    for div, t in F_TABLE.items():
        bound = t["g"](r).mean() - t["fstar"](t["g"](f)).mean()
        check("fgan", -bound, -t["g"](f).mean(), div)  # G maximises E_Q g_f(V), Nowozin Sec. 3.2


def test_mmd2_biased_against_a_double_loop():
    torch.manual_seed(1)
    a, b = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64) + 1

    def k(u, v):
        return sum(math.exp(-((u - v) ** 2).sum().item() / (2 * s * s)) for s in MMD_SIGMAS)

    def mean_k(xs, ys):
        return sum(k(u, v) for u in xs for v in ys) / (len(xs) * len(ys))

    want = mean_k(a, a) - 2 * mean_k(a, b) + mean_k(b, b)
    mmd2, w_a, w_b = gan_losses.mmd2_biased(a, b, MMD_SIGMAS)
    assert abs(mmd2.item() - want) < 1e-10 and want > 0
    assert abs(w_a.item() - (mean_k(a, a) - mean_k(a, b))) < 1e-10
    assert gan_losses.mmd2_biased(a, a, MMD_SIGMAS)[0].abs() < 1e-12


# ---- optima with p_g fixed and known ---------------------------------------------

@pytest.mark.parametrize("loss", ["gan", "lsgan"])
def test_discriminator_trained_alone_reaches_its_optimum(loss):
    """gan: sigmoid(D*) = p/(p+q) (Goodfellow Prop. 1); lsgan: D* = (b p + a q)/(p + q) with a=0, b=1 (Mao Prop. 1)."""
    torch.manual_seed(2)
    m = _gan_1d(loss)
    phase = m.phases(1e-2)[0]
    assert phase.name == "D"
    opt = torch.optim.Adam(phase.params, 1e-2, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300)
    for _ in range(300):
        out = phase.loss(P.sample((1024, 1)))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        sched.step()
    x = torch.linspace(-3, 3.5, 200, dtype=torch.float64)
    p, q = P.log_prob(x).exp(), Q.log_prob(x).exp()
    raw = m.critic(x[:, None])
    d = torch.sigmoid(raw) if loss == "gan" else raw
    err = (d - p / (p + q))[p + q > 0.05].abs()
    assert err.mean() < 0.02 and err.max() < 0.06, (err.mean(), err.max())


def test_gan_value_at_the_optimal_discriminator_is_2js_minus_log4():
    """Goodfellow et al. Thm. 1: max_D V(D, G) = -log 4 + 2 JS(P || Q); D* = log p/q in logits."""
    m = _gan_1d("gan")
    m.D = Fixed(_log_u)
    torch.manual_seed(3)
    out = m.d_loss(P.sample((400_000, 1)))
    js = 0.5 * _divergence(lambda u: u * (2 * u / (1 + u)).log()) + 0.5 * _divergence(lambda u: (2 / (1 + u)).log())
    assert js > 0.02
    assert abs(-out["d_loss"].item() - (2 * js - math.log(4))) < 0.003


@pytest.mark.parametrize("div", list(F_TABLE))
def test_fgan_bound_at_the_optimal_critic_is_the_divergence(div):
    """F(T*) = E_P T* - E_Q f*(T*) = D_f(P || Q) at T* = f'(p/q) (Nowozin et al. eq. 4); below it elsewhere."""
    t = F_TABLE[div]
    m = _gan_1d("fgan", divergence=div)
    v_star = lambda x: t["g_inv"](t["f_prime"](_log_u(x).exp()))  # noqa: E731  V with g_f(V) = T*
    x = P.sample((400_000, 1))

    m.D = Fixed(v_star)
    torch.manual_seed(4)
    bound = -m.d_loss(x)["d_loss"].item()
    want = _divergence(t["f"])
    assert abs(bound - want) < 0.005, (bound, want)

    m.D = Fixed(lambda x: v_star(x) + 0.3)  # any other critic gives less (same samples)
    torch.manual_seed(4)
    assert -m.d_loss(x)["d_loss"].item() < bound - 1e-3
    if div == "kl":  # KL between Gaussians in closed form, as a check on the quadrature
        s = (Q.scale / P.scale).item()
        closed = math.log(s) + (1 + (P.loc - Q.loc).item() ** 2) / (2 * s * s) - 0.5
        assert abs(want - closed) < 1e-8


def test_wgan_gp_penalty_vanishes_exactly_for_unit_gradient_norm():
    m = GAN((2,), GANConfig(loss="wgan_gp", hidden=16, layers=2)).double()
    m.D = nn.Linear(2, 1).double()
    x = torch.randn(64, 2, dtype=torch.float64)
    with torch.no_grad():
        m.D.weight.copy_(_f64([[0.6, 0.8]]))  # |grad D| = 1 everywhere
    out = m.d_loss(x)
    assert out["gp"].abs() < 1e-12
    assert torch.allclose(out["loss"], out["d_loss"])

    with torch.no_grad():
        m.D.weight.copy_(_f64([[1.2, 1.6]]))  # |grad D| = 2: penalty lambda (2 - 1)^2
    m.config.gp_weight = 3.0  # a live knob
    out = m.d_loss(x)
    assert abs(out["gp"].item() - 3.0) < 1e-12
    assert torch.allclose(out["loss"], out["d_loss"] + out["gp"])
    m.D.zero_grad()
    out["gp"].backward()  # d/dw lambda (|w| - 1)^2 = 2 lambda (|w| - 1) w / |w|
    assert torch.allclose(m.D.weight.grad, 2 * 3.0 * (2 - 1) * _f64([[0.6, 0.8]]))

    m.D = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()  # gradient norm varies
    assert m.d_loss(x)["gp"] > 1e-4


# ---- every registered objective: protocol, gradients, views --------------------

@pytest.fixture(params=LOSSES)
def name(request):
    return request.param


def _small(name, shape=(2,), **over):
    torch.manual_seed(5)
    return build_model(name, shape, {"hidden": 16, "layers": 2, **over})


def test_registry_defaults():
    assert set(model_names("gan")) == set(LOSSES) | {"cyclegan", "bigan"}  # one GAN class per objective, and two more
    for name in LOSSES:
        cfg = model_config(name)
        assert cfg.loss == name
        assert 1e-5 <= train_config(name).lr <= 1e-3
    assert model_config("fgan").divergence == "js"
    gp = model_config("wgan_gp")
    assert gp.n_critic == 5 and gp.betas == "0.5,0.9" and gp.gp_weight == 10.0
    assert model_config("wgan").clip == 0.01


def test_phases_and_where_gradients_go(name):
    m = _small(name, n_critic=3, lr_g=0.002)
    d, g = m.phases(1e-3)
    assert (d.name, d.repeats, d.lr, g.name, g.repeats, g.lr) == ("D", 3, 1e-3, "G", 1, 0.002)
    assert d.betas == g.betas == tuple(float(b) for b in m.config.betas.split(","))
    assert {id(p) for p in d.params} == {id(p) for p in m.D.parameters()}
    assert {id(p) for p in g.params} == {id(p) for p in m.G.parameters()}
    x = torch.randn(32, 2)
    for phase, own, other in ((d, m.D, m.G), (g, m.G, m.D)):
        m.zero_grad(set_to_none=True)
        out = phase.loss(x)
        assert {"loss"} <= set(out) and all(torch.isfinite(v) for v in out.values())
        out["loss"].backward()
        assert all(p.grad is not None for p in own.parameters() if p.requires_grad), phase.name
        assert any(p.grad.abs().sum() > 0 for p in own.parameters()), phase.name
        assert all(p.grad is None for p in other.parameters()), phase.name
    # a critic seen only through differences has no use for an output bias: it is fixed at zero
    frozen = [n for n, p in m.D.named_parameters() if not p.requires_grad]
    assert frozen == (["4.bias"] if name in ("wgan", "wgan_gp", "mmdgan") else []), frozen
    assert all(float(p.abs().sum()) == 0 for n, p in m.D.named_parameters() if n in frozen)
    assert set(m.d_loss(x)) == {"loss", "d_loss", "d_real", "d_fake"} | ({"gp"} if name == "wgan_gp" else set())
    assert set(m.g_loss(x)) == {"loss", "g_loss"}


def test_weight_clipping_after_the_critic_step(name):
    m = _small(name)
    with torch.no_grad():
        for p in m.D.parameters():
            p.normal_(0.0, 1.0)
    before = [p.clone() for p in m.D.parameters()]
    m.after_phase("G")
    assert all(torch.equal(a, b) for a, b in zip(before, m.D.parameters()))
    m.after_phase("D")
    c = m.config.clip
    clipped = all(p.abs().max() <= c for p in m.D.parameters())
    assert clipped == (name in ("wgan", "mmdgan"))
    if clipped:
        assert all(torch.equal(p, b.clamp(-c, c)) for p, b in zip(m.D.parameters(), before))


def test_traces(name):
    m = _small(name, latent=3)
    x = torch.randn(40, 2)
    axis = torch.linspace(-3, 3, 7)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    t = m.traces(x, grid)
    want = {"samples": (40, 2), "noise_grid": (400, 2), "warped_grid": (400, 2), "critic_grad": (40, 2), "critic": (49,)}
    if name in ("gan", "nsgan"):
        want["critic_prob"] = (49,)
    assert {k: v.shape for k, v in t.items()} == want
    z = torch.from_numpy(t["noise_grid"])
    assert z[0].tolist() == [-2.5, -2.5] and z[1, 1] == -2.5 and z[-1].tolist() == [2.5, 2.5]
    assert torch.allclose(torch.from_numpy(t["warped_grid"]), m.G(torch.cat([z, torch.zeros(400, 1)], 1)).detach(), atol=1e-6)
    if name != "mmdgan":  # the mmd witness depends on the trace's own reference batches
        assert torch.allclose(torch.from_numpy(t["critic"]), m.critic(grid), atol=1e-6)
    if name in ("gan", "nsgan"):
        assert torch.allclose(torch.from_numpy(t["critic_prob"]), torch.sigmoid(m.critic(grid)), atol=1e-6)
        assert torch.allclose(m.critic_prob(grid), torch.sigmoid(m.critic(grid)))
    with pytest.raises(LogProbUnavailable):
        m.log_prob(x)


@pytest.mark.parametrize("loss", ["wgan", "mmdgan"])
def test_critic_grad_is_the_gradient_of_the_critic(loss):
    m = GAN((2,), GANConfig(loss=loss, hidden=16, layers=2)).double()
    torch.manual_seed(6)
    x, real, fake = (torch.randn(8, 2, dtype=torch.float64) for _ in range(3))
    grad = m.critic_grad(x, real, fake)
    h = 1e-6
    for i in range(2):
        e = torch.zeros(2, dtype=torch.float64)
        e[i] = h
        fd = (m.critic(x + e, real, fake) - m.critic(x - e, real, fake)) / (2 * h)
        assert torch.allclose(grad[:, i], fd, atol=1e-7)


def test_mmd_witness_averages_to_mmd2():
    """mean_x w(x) - mean_y w(y) over the two batches of a D step is their MMD^2 (= -d_loss)."""
    m = GAN((2,), GANConfig(loss="mmdgan", hidden=16, layers=2)).double()
    x = torch.randn(100, 2, dtype=torch.float64) + 1.0
    out = m.d_loss(x)  # also keeps x and its generated batch as the witness's references
    fake = m._witness_fake
    assert out["d_loss"] < 0  # MMD^2 > 0 between data and an untrained generator
    assert torch.allclose(m.critic(x).mean() - m.critic(fake).mean(), -out["d_loss"], rtol=1e-9)
    assert torch.allclose(out["d_real"] - out["d_fake"], -out["d_loss"], rtol=1e-9)


@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_image_shaped_data(name, net):
    m = _small(name, (1, 4, 4), net=net)
    x = torch.rand(12, 1, 4, 4)
    m.init_from_data(x)
    for phase in m.phases(1e-3):
        out = phase.loss(x)
        assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
        out["loss"].backward()
        m.after_phase(phase.name)
    assert m.sample(5).shape == (5, 1, 4, 4)
    t = m.traces(x, None)
    if net == "mlp":
        assert {k: v.shape for k, v in t.items()} == {"samples": (12, 16), "noise_grid": (400, 2),
                                                      "warped_grid": (400, 16), "critic_grad": (12, 16)}
    else:  # the fixed noise's digits and D's scores on them, a 10 x 10 noise grid
        assert {k: v.shape for k, v in t.items()} == {"samples": (12, 16), "noise_grid": (100, 2),
                                                      "warped_grid": (100, 16), "critic_real": (12,),
                                                      "critic_fake": (12,)}
