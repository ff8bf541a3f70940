"""Snapshots with the documented trace shapes, and what the view tests read off a figure."""

from __future__ import annotations

import math
import re

import numpy as np

from playground.views import all_views

N, G, L, M = 500, 60, 6, 15
BOX = ((-4.0, 4.0), (-3.0, 3.0))
IMAGE_SHAPE = (1, 28, 28)
FAMILIES = list(all_views())
PANELS = {family: [(p.key, p.title) for p in view.panels] for family, view in all_views().items()}
EQUATIONS = {family: view.equations for family, view in all_views().items()}


def plane_grid(box=BOX, g=G):
    xs, ys = np.linspace(*box[0], g), np.linspace(*box[1], g)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32)


def synthetic(family: str, seed: int = 0, d: int = 2) -> dict:
    """A snapshot with the documented trace shapes (D = d, n = N, grid G x G)."""
    rng = np.random.default_rng(seed)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)  # noqa: E731
    grid = plane_grid()
    n = N if d == 2 else 70  # digits: enough for an 8 x 8 tile
    if family == "flow":
        tr = {"forward_states": f32(L + 1, n, d), "inverse_states": f32(L + 1, n, d), "log_dets": f32(L)}
        if d == 2:
            tr["grid_states"] = np.stack([grid * (1 + 0.1 * l) for l in range(L + 1)])
            tr["log_density"] = (-0.5 * (grid**2).sum(1) - math.log(2 * math.pi)).astype(np.float32)
    elif family == "gan":
        tr = {"samples": f32(n, d), "noise_grid": plane_grid(((-2, 2), (-2, 2)), M), "warped_grid": f32(M * M, d),
              "critic_grad": f32(n, d), "source": f32(n, d), "back": f32(n, d), "round_trip": f32(n, d),
              "cycle_error": np.float32(0.4), "codes": f32(n, 2), "prior": f32(n, 2), "reconstructions": f32(n, d)}
        if d == 2:
            tr["critic"] = f32(G * G)
            tr["critic_prob"] = rng.random(G * G).astype(np.float32)
    elif family == "vae":
        tr = {"z_mean": f32(n, 2), "z_var": rng.random((n, 2)).astype(np.float32), "recon": f32(n, d),
              "latent_grid": plane_grid(((-3, 3), (-3, 3)), M), "decoded_grid": f32(M * M, d), "samples": f32(n, d),
              "sample_means": f32(n, d), "elbo_recon": 100 + 10 * rng.random(n).astype(np.float32),
              "elbo_kl": 5 + rng.random(n).astype(np.float32)}
    elif family == "diffusion":
        tr = {"trajectory": f32(41, n, d), "trajectory_t": np.linspace(1, 0, 41).astype(np.float32),
              "forward": f32(6, n, d), "forward_t": np.linspace(0, 1, 6).astype(np.float32),
              "field_t": np.array([0.3], dtype=np.float32)}
        if d == 2:
            tr["eps_field"], tr["score_field"] = f32(G * G, 2), f32(G * G, 2)
    elif family == "continuous":
        tr = {"paths": f32(31, n, d), "paths_t": np.linspace(1, 0, 31).astype(np.float32),
              "straightness": np.array([0.25], dtype=np.float32), "field_t": np.array([0.3], dtype=np.float32)}
        if d == 2:
            tr["velocity_field"] = f32(G * G, 2)
    elif family == "ebm":
        tr = {"chains": f32(21, 100, d), "buffer": f32(n, d), "box": np.array([[-4, -3], [4, 3]], np.float32),
              "log_z": np.array([1.5], dtype=np.float32)}
        if d == 2:
            tr["energy"] = (0.5 * (grid**2).sum(1)).astype(np.float32)
            tr["log_density"] = (-0.5 * (grid**2).sum(1) - math.log(2 * math.pi)).astype(np.float32)
        else:  # digits: energies of data and buffer, chains from noise at their steps
            tr.update(energy_data=f32(n), energy_buffer=f32(n), noise_chains=f32(7, 4, d),
                      noise_steps=np.arange(0, 61, 10, dtype=np.float32))
    elif family == "autoregressive":
        tr = {"samples": f32(n, d)}
        if d == 2:
            xs, ys = np.linspace(*BOX[0], G), np.linspace(*BOX[1], G)
            normal = lambda v: (np.exp(-0.5 * v**2) / math.sqrt(2 * math.pi)).astype(np.float32)  # noqa: E731
            tr.update(log_density=(-0.5 * (grid**2).sum(1) - math.log(2 * math.pi)).astype(np.float32),
                      x1=np.array([0.5], np.float32), x2_values=ys.astype(np.float32), conditional=normal(ys),
                      x1_values=xs.astype(np.float32), marginal=normal(xs))
        else:  # binary digits: one sampling pass in 8 canvases, a digit and its conditionals
            tr.update(frames=(rng.random((8, 8, d)) < 0.2).astype(np.float32),
                      frame_pixels=np.linspace(d / 8, d, 8).astype(np.float32),
                      digit=(rng.random(d) < 0.2).astype(np.float32), p_digit=rng.random(d).astype(np.float32))
    elif family == "mixture":
        r = rng.random((n, 3)).astype(np.float32)
        tr = {"weights": np.array([0.5, 0.3, 0.2], np.float32), "means": f32(3, d),
              "covariances": np.repeat(np.eye(d, dtype=np.float32)[None], 3, 0) * 0.3,
              "responsibilities": r / r.sum(1, keepdims=True), "samples": f32(n, d),
              "ll_history": -3 + np.log1p(np.arange(20, dtype=np.float32)) / 10, "ll_steps": np.arange(1, 21, dtype=np.float32)}
        if d == 2:
            tr["log_density"] = (-0.5 * (grid**2).sum(1) - math.log(2 * math.pi)).astype(np.float32)
    elif family == "score":
        tr = {"chain": f32(21, n, d), "chain_sigma": np.geomspace(1.0, 0.1, 21).astype(np.float32),
              "field_level": np.array([1.0, 0.1], dtype=np.float32)}
        if d == 2:
            tr["score_field"] = f32(G * G, 2)
    elif family == "sde":
        tr = {"trajectory": f32(41, n, d), "trajectory_t": np.linspace(1, 1e-3, 41).astype(np.float32),
              "forward": f32(6, n, d), "forward_t": np.linspace(0, 1, 6).astype(np.float32),
              "field_t": np.array([0.3], dtype=np.float32), "field_level": np.array([0.8, 0.6], dtype=np.float32)}
        if d == 2:
            tr["score_field"] = f32(G * G, 2)
    else:
        raise ValueError(family)
    if d != 2:  # digits in [0, 1]
        tr = {k: (1 / (1 + np.exp(-v)) if v.ndim >= 2 and v.shape[-1] == d else v) for k, v in tr.items()}
    data = f32(N, 2) if d == 2 else rng.random((n, *IMAGE_SHAPE)).astype(np.float32)
    return {"step": 7, "time": 1.5, "status": "running", "terms": {}, "traces": tr, "data": data}


def ctx(**kw) -> dict:
    grid = plane_grid()
    c = {"bounds": BOX, "grid_resolution": G, "dataset": "toy", "data_shape": (2,),
         "true_log_density": (-0.5 * (grid**2).sum(1) - math.log(2 * math.pi)).astype(np.float32),
         "modes": np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]]), "labels": None, "options": {"t": 0.3}}
    c.update(kw)
    return c


def title_of(fig) -> str:
    """The panel's title and its note as one line of plain text (the panel wraps and styles them)."""
    for a in fig.layout.annotations:
        if a.name == "title":
            return re.sub(r"<[^>]+>", "", a.text.replace("<br>", " "))
    return ""


def message(fig) -> str | None:
    """A placeholder's message as one line (the panel wraps it onto several)."""
    for a in fig.layout.annotations:
        if a.name == "message":
            return a.text.replace("<br>", " ")
    return None


def trace(fig, name: str, type_: str | None = None):
    found = [t for t in fig.data if t.name == name and (type_ is None or t.type == type_)]
    assert found, f"no trace named {name!r}; have {[t.name for t in fig.data]}"
    return found[0]


HISTORY = [{"step": 10 * i, "time": 0.5 * i, "loss": 2.0 / (i + 1), "recon": 1.5 - 0.1 * i, "kl": 0.2 + 0.01 * i,
            "elbo": -(1.7 - 0.09 * i)} for i in range(1, 30)]
RUNS = {"run A": [{"step": 100 * i, "time": float(i), "kl": 1.0 / i**2, "modes_covered": min(i, 8), "n_modes": 8,
                   "high_quality": 0.1 * i} for i in range(1, 9)],
        "run B": [{"step": 100 * i, "time": 2.0 * i, "kl": 2.0 / i**2, "modes_covered": 1, "n_modes": 8}
                  for i in range(1, 5)]}
