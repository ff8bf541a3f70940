"""What each family optimises, in Markdown with LaTeX, and which curve or panel shows which term.

EQUATIONS[family] is shown beside the live views; the names in quotes are the
loss terms of the Loss chart and the panel titles of the views.
"""

from __future__ import annotations

FLOW = r"""
### Normalizing flow: change of variables

A flow is an invertible map $f = f_L \circ \dots \circ f_1$ from data $x$ to a base point $z$ with
$z \sim \mathcal{N}(0, I)$. Writing $h_0 = x$ and $h_l = f_l(h_{l-1})$, the density of the data is exact:

$$\log q(x) = \log \mathcal{N}\big(f(x);\, 0, I\big) + \sum_{l=1}^{L} \log \left|\det \frac{\partial h_l}{\partial h_{l-1}}\right|$$

Training maximises the likelihood of the data, i.e. minimises

$$\mathcal{L} = -\,\mathbb{E}_{x \sim p_\text{data}}\big[\log q(x)\big].$$

Sampling runs the stack backwards: $z \sim \mathcal{N}(0, I)$, $x = f^{-1}(z)$.

**What you see**
- `loss` and `nll` are $-\mathbb{E}[\log q(x)]$ in nats; `log_det` is the mean of $\sum_l \log|\det \partial h_l / \partial h_{l-1}|$.
- *A flow transforming space*: the base grid pushed through $f^{-1}$ layer by layer; green points are the data at the same stage $h_l$, purple points are samples.
- *Data pulled back to the base*: $z = f(x)$ for the data; if the flow is right these fill the dashed $1\sigma$/$2\sigma$ circles of $\mathcal{N}(0, I)$.
- *Model density*: $q(x)$ on the plane beside the true $p(x)$.
- *Per-layer log-determinant*: each bar is one term of the sum above (how much that layer stretches space).
"""

GAN = r"""
### GAN: a two-player minimax game

A generator $G$ maps noise $z \sim p(z)$ to samples $G(z)$; a discriminator $D(x) \in (0, 1)$ says how likely
$x$ is real. They play (Goodfellow et al. 2014)

$$\min_G \max_D \; V(D, G) = \mathbb{E}_{x \sim p_\text{data}}\big[\log D(x)\big] + \mathbb{E}_{z \sim p(z)}\big[\log\big(1 - D(G(z))\big)\big].$$

For a fixed generator with sample density $p_g$ the best discriminator is

$$D^*(x) = \frac{p_\text{data}(x)}{p_\text{data}(x) + p_g(x)},$$

and then $V(D^*, G) = 2\,\mathrm{JS}(p_\text{data} \,\|\, p_g) - \log 4$. The non-saturating generator minimises
$-\mathbb{E}_z[\log D(G(z))]$ instead; a Wasserstein GAN replaces $D$ by an unbounded critic and minimises
$\mathbb{E}_{p_g}[D] - \mathbb{E}_{p_\text{data}}[D]$ under a Lipschitz constraint.

**What you see**
- `loss_D` is the discriminator's loss (its side of the game), `loss_G` the generator's; they are named by phase.
- *Discriminator*: the background is $D(x)$ (green: "real", purple: "fake"); arrows are $\nabla_x D$ at generated samples, the direction the generator is pulled.
- *Generator*: a regular grid of noise $z$ and its image $G(z)$: how the generator folds and stretches noise.
- *Learned vs optimal discriminator*: $D$ beside $D^*$, with $p_g$ estimated from the samples.
- *Samples per mode* and the modes-covered timeline: mode collapse shows as modes with no samples.
"""

VAE = r"""
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
- *Decoder manifold*: the decoder mean over a grid of $z$: the surface the model believes data lie on.
- *Latent space*: encoder means $\mu(x)$ coloured by label, over the prior's $1\sigma$/$2\sigma$ circles; small ellipses are $q(z \mid x)$.
- *Reconstructions*: each data point and the decoder mean at its $\mu(x)$.
"""

DIFFUSION = r"""
### Diffusion: noising forwards, denoising backwards

The forward process adds Gaussian noise over $t = 1, \dots, T$ with a schedule $\beta_t$; with
$\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$ it has the closed form (Ho et al. 2020)

$$q(x_t \mid x_0) = \mathcal{N}\big(x_t;\, \sqrt{\bar\alpha_t}\, x_0,\, (1 - \bar\alpha_t) I\big), \qquad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon.$$

A network $\epsilon_\theta(x_t, t)$ learns to predict the noise:

$$\mathcal{L} = \mathbb{E}_{t, x_0, \epsilon}\big[\lVert \epsilon - \epsilon_\theta(x_t, t) \rVert^2\big],$$

which is denoising score matching, since the score is $\nabla_x \log p_t(x) \approx -\epsilon_\theta(x, t) / \sqrt{1 - \bar\alpha_t}$.
The reverse process starts from $x_T \sim \mathcal{N}(0, I)$ and steps

$$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1 - \bar\alpha_t}}\, \epsilon_\theta(x_t, t)\Big) + \sigma_t\, z, \qquad z \sim \mathcal{N}(0, I).$$

**What you see**
- `loss` is the mean squared error of the noise prediction above.
- *Forward process*: the data at a few times $t$, dissolving into $\mathcal{N}(0, I)$.
- *Reverse process*: particles following the reverse chain from noise (grey) to samples (purple).
- *Learned field*: the score $\nabla_x \log p_t(x)$ (or $-\epsilon_\theta$) on the plane at the chosen $t$; arrows point towards the data.
- *Denoising film strip*: the same particles at a few steps of the reverse chain.
"""

EQUATIONS: dict[str, str] = {"flow": FLOW.strip(), "gan": GAN.strip(), "vae": VAE.strip(),
                             "diffusion": DIFFUSION.strip()}


def equations(family: str) -> str:
    """The family's equations, or a short line for a family without a write-up."""
    return EQUATIONS.get(family, f"No equations are written up for the {family} family yet.")
