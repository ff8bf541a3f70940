"""Seeding torch's generators, without what torch.manual_seed costs where no accelerator is used.

torch.manual_seed also seeds CUDA's generators, and until CUDA has started (always, on a machine
without it) it queues that seeding with a formatted traceback of its caller: it reads every frame's
source file again, and each of those reads gives up the interpreter lock and waits to get it back.
From a request thread of the page's server, forty frames deep, that was half of what a Reset cost
on a busy server (BENCHMARKS.md). `manual_seed` seeds the same generators, and CUDA's and MPS's only
where the machine has them.
"""

from __future__ import annotations

import torch


def manual_seed(seed: int) -> torch.Generator:
    """torch.manual_seed(seed), asking CUDA and MPS only where they are available."""
    seed = int(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if torch.backends.mps.is_available():
        torch.mps.manual_seed(seed)
    return torch.random.default_generator.manual_seed(seed)
