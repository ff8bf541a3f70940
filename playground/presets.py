"""Guided experiments: one click sets model, data and settings, and says what to watch for.

Each preset is a dict: slug (for ?preset= links), title, watch (two lines),
family, model, dataset, settings (model and trainer settings changed from the
model's defaults). A preset with "runs" trains them one after another on the
same page, so the Compare tab can put them side by side.

Every run sets a seed (or keeps the default 0) and a pace, steps per second, one of
the page's speeds, that makes it last a minute or more: at full speed the GAN
collapse was over in 23 s.
What a text promises happens under exactly these settings;
tests/playground/test_presets.py trains each preset's first stretch and checks it
with the metrics the page draws.
"""

from __future__ import annotations

# Small players and batches. At 128 units and batches of 256 this run reached 8 of 8 at step 50 and
# was down to 3 by step 200; at this size it climbs to 8 by about step 350 and keeps them, and a
# step (five critic steps, each with its gradient penalty) costs a few times less.
_WGAN_GP = {"hidden": 32, "batch_size": 128, "lr": 0.001, "seed": 1, "steps": 1500, "pace": 20}

PRESETS: list[dict] = [
    {
        "slug": "gan-collapse",
        "title": "A GAN collapses onto a few modes",
        "watch": ("A non-saturating GAN with small players (32 units a layer) and a large learning rate on 25 "
                  "narrow Gaussians: its samples bunch onto two to four blobs and hop from blob to blob.\nWatch "
                  "*modes covered* stay at a handful of the 25 for the first 1,900 steps or so; then the "
                  "generator spreads out and picks modes up slowly, about a dozen by step 3,000."),
        "family": "gan",
        "model": "nsgan",
        "dataset": "twenty_five_gaussians",
        "settings": {"hidden": 32, "lr": 0.002, "seed": 2, "steps": 3000, "pace": 20},
    },
    {
        "slug": "wgan-gp",
        "title": "WGAN-GP keeps every mode",
        "watch": ("A Wasserstein critic with a gradient penalty, five critic steps to each generator step, on "
                  "the ring of eight Gaussians.\nThe critic's surface stays smooth, its gradients point every "
                  "sample toward the data, and *modes covered* climbs to 8 of 8 by about step 350 and stays there."),
        "family": "gan",
        "model": "wgan_gp",
        "dataset": "eight_gaussians",
        "settings": dict(_WGAN_GP),
    },
    {
        "slug": "flow-moons",
        "title": "A flow unfolds the two moons",
        "watch": ("RealNVP pulls the two moons back to a Gaussian one coupling layer at a time.\nWatch the grid "
                  "bend layer by layer, and the model's density sharpen onto the two arcs as the KL falls."),
        "family": "flow",
        "model": "realnvp",
        "dataset": "two_moons",
        "settings": {"steps": 2000, "pace": 20},
    },
    {
        "slug": "vae-latent",
        "title": "The VAE's latent grid",
        "watch": ("A VAE with a 2D latent on the eight Gaussians: the decoded latent grid is a map of what each "
                  "region of z becomes.\nAfter a thousand steps or so raise *beta* to 2 while it trains (it is "
                  "live): the codes crowd toward N(0, I) and the reconstructions blur; at 4 the posterior "
                  "collapses onto the prior within a few hundred steps, and every reconstruction becomes the "
                  "data's mean."),
        "family": "vae",
        "model": "vae",
        "dataset": "eight_gaussians",
        "settings": {"latent": 2, "steps": 3000, "pace": 20},
    },
    {
        "slug": "diffusion-trajectories",
        "title": "Diffusion trajectories",
        "watch": ("DDPM on the swiss roll: each sample is a path from noise back to the data.\nMove the time "
                  "slider to see the learned noise field at that t: wide and smooth near noise, fine near the data."),
        "family": "diffusion",
        "model": "ddpm",
        "dataset": "swiss_roll",
        "settings": {"steps": 2000, "pace": 20},
    },
    {
        "slug": "likelihood-vs-quality",
        "title": "Likelihood versus sample quality",
        "watch": ("A flow (exact likelihood) and then a WGAN-GP (no likelihood at all) train on the same eight "
                  "Gaussians, one after the other.\nOpen **Compare** when both are done: only the flow has a KL "
                  "to show; both cover 8 of 8 modes, though by MMD the GAN's samples stay a few times further "
                  "from the data."),
        "family": "flow",
        "model": "realnvp",
        "dataset": "eight_gaussians",
        "settings": {"steps": 1500, "pace": 20},
        "runs": [
            {"model": "realnvp", "dataset": "eight_gaussians", "settings": {"steps": 1500, "pace": 20}},
            {"model": "wgan_gp", "dataset": "eight_gaussians", "settings": dict(_WGAN_GP)},
        ],
    },
]


def find(key: str) -> dict | None:
    """A preset by title or slug."""
    for p in PRESETS:
        if key in (p["title"], p["slug"]):
            return p
    return None
