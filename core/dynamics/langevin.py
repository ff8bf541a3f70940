"""Langevin dynamics: sampling from a density known only through its score.

Unadjusted Langevin (Welling & Teh 2011; Song & Ermon 2019, eq. 4), with step size eps:

    x_{k+1} = x_k + (eps / 2) grad log p(x_k) + sqrt(eps) z_k,   z_k ~ N(0, I),

whose chain approaches p as eps -> 0 and k -> infinity (for a Gaussian
N(m, s^2) it settles at N(m, s^2 / (1 - eps / (4 s^2))), within O(eps) of p).

Annealed Langevin (Song & Ermon 2019, Algorithm 1) runs it over noise levels
sigma_1 > ... > sigma_L with a score of the data blurred by each, and step
alpha_i = eps sigma_i^2 / sigma_L^2, so that every level's chain moves by a
similar fraction of its own width; an energy-based model uses it with
grad log p = -grad E.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # x (n, ...) -> grad log p(x) (n, ...)
NoisyScoreFn = Callable[[torch.Tensor, float], torch.Tensor]  # (x, sigma) -> grad log p_sigma(x)


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)


def langevin(score: ScoreFn, x: torch.Tensor, step_size: float, n_steps: int,
             generator: torch.Generator | None = None, return_intermediates: bool = False) -> torch.Tensor:
    """n_steps of unadjusted Langevin from x; the last state, or all n_steps + 1 of them."""
    if step_size <= 0 or n_steps < 0:
        raise ValueError(f"Langevin needs step_size > 0 and n_steps >= 0, got {step_size}, {n_steps}")
    states = [x]
    for _ in range(int(n_steps)):
        x = x + 0.5 * step_size * score(x) + step_size**0.5 * _noise(x, generator)
        if return_intermediates:
            states.append(x)
    return torch.stack(states) if return_intermediates else x


def annealed_langevin(score: NoisyScoreFn, x: torch.Tensor, sigmas: Sequence[float], steps_per_level: int,
                      eps: float, generator: torch.Generator | None = None,
                      return_intermediates: bool = False) -> torch.Tensor:
    """Song & Ermon's Algorithm 1 over decreasing sigmas; the last state, or the state after
    every step (len(sigmas) * steps_per_level + 1 of them)."""
    sigmas = [float(s) for s in sigmas]
    if any(a <= b for a, b in zip(sigmas, sigmas[1:])):
        raise ValueError("annealed Langevin needs strictly decreasing noise levels sigma_1 > ... > sigma_L")
    states = [x]
    for sigma in sigmas:
        alpha = eps * sigma**2 / sigmas[-1] ** 2
        level = langevin(lambda y: score(y, sigma), x, alpha, steps_per_level, generator, return_intermediates)
        if return_intermediates:
            states.extend(level[1:])
            x = level[-1]
        else:
            x = level
    return torch.stack(states) if return_intermediates else x
