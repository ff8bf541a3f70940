import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Small tensors: a second intra-op thread only waits (badly so on a loaded 2-core
# machine); the trainer's background threads still use the other core.
torch.set_num_threads(1)
os.environ.setdefault("PLAYGROUND_DATA", str(SHARED_DATA))
# The tests never download: MNIST is beside the checkout or its tests skip.
os.environ["PLAYGROUND_DOWNLOAD"] = "0"


@pytest.fixture
def mnist_dir():
    if not (Path(os.environ["PLAYGROUND_DATA"]) / "mnist").is_dir():
        pytest.skip("the MNIST test split (../shared/data/mnist) is not beside this checkout")
    return Path(os.environ["PLAYGROUND_DATA"])
