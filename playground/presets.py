"""Guided experiments: one click sets model, data and settings, and says what to watch for.

Each preset is a dict: slug (for ?preset= links), title, watch (two lines),
family, model, dataset, settings (model and trainer settings changed from the
model's defaults). A preset with "runs" trains them one after another on the
same page, so the Compare tab can put them side by side.
"""

from __future__ import annotations

PRESETS: list[dict] = [
    {
        "slug": "gan-collapse",
        "title": "A GAN collapses onto a few modes",
        "watch": ("A non-saturating GAN with a large learning rate on 25 narrow Gaussians: its samples bunch onto "
                  "a few blobs and hop between them.\nWatch *modes covered* stay at a handful of the 25 for "
                  "hundreds of steps while the discriminator sharpens around the blobs the generator found."),
        "family": "gan",
        "model": "nsgan",
        "dataset": "twenty_five_gaussians",
        "settings": {"lr": 0.002, "steps": 1500, "seed": 1},
    },
    {
        "slug": "wgan-gp",
        "title": "WGAN-GP keeps every mode",
        "watch": ("A Wasserstein critic with a gradient penalty on the ring of eight Gaussians.\nThe critic's "
                  "surface stays smooth, its gradients point every sample toward the data, and *modes covered* "
                  "reaches 8 of 8 within a few hundred steps and stays there."),
        "family": "gan",
        "model": "wgan_gp",
        "dataset": "eight_gaussians",
        "settings": {"lr": 0.001, "steps": 1500, "seed": 1},
    },
    {
        "slug": "flow-moons",
        "title": "A flow unfolds the two moons",
        "watch": ("RealNVP pulls the two moons back to a Gaussian one coupling layer at a time.\nWatch the grid "
                  "bend layer by layer, and the model's density sharpen onto the two arcs as the KL falls."),
        "family": "flow",
        "model": "realnvp",
        "dataset": "two_moons",
        "settings": {"steps": 3000},
    },
    {
        "slug": "vae-latent",
        "title": "The VAE's latent grid",
        "watch": ("A VAE with a 2D latent on the eight Gaussians: the decoded latent grid is a map of what each "
                  "region of z becomes.\nRaise *beta* while it trains (it is live) and watch the codes crowd "
                  "toward N(0, I) and the reconstructions blur."),
        "family": "vae",
        "model": "vae",
        "dataset": "eight_gaussians",
        "settings": {"latent": 2, "steps": 4000},
    },
    {
        "slug": "diffusion-trajectories",
        "title": "Diffusion trajectories",
        "watch": ("DDPM on the swiss roll: each sample is a path from noise back to the data.\nMove the time "
                  "slider to see the learned noise field at that t: wide and smooth near noise, fine near the data."),
        "family": "diffusion",
        "model": "ddpm",
        "dataset": "swiss_roll",
        "settings": {"steps": 4000},
    },
    {
        "slug": "likelihood-vs-quality",
        "title": "Likelihood versus sample quality",
        "watch": ("A flow (exact likelihood) and then a WGAN-GP (no likelihood at all) train on the same eight "
                  "Gaussians, one after the other.\nOpen **Compare** when both are done: only the flow has a KL "
                  "to show, while by MMD and modes covered the GAN's samples can match it."),
        "family": "flow",
        "model": "realnvp",
        "dataset": "eight_gaussians",
        "settings": {"steps": 1500},
        "runs": [
            {"model": "realnvp", "dataset": "eight_gaussians", "settings": {"steps": 1500}},
            {"model": "wgan_gp", "dataset": "eight_gaussians", "settings": {"lr": 0.001, "steps": 1500, "seed": 1}},
        ],
    },
]


def find(key: str) -> dict | None:
    """A preset by title or slug."""
    for p in PRESETS:
        if key in (p["title"], p["slug"]):
            return p
    return None
