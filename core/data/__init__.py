"""Datasets: 2D toys with exact densities, files of points, MNIST.

Importing this package registers the built-in datasets.
"""

from . import toy2d  # noqa: F401 - registers the 2D datasets, listed first
from . import mnist  # noqa: F401, I001 - registers MNIST
from .base import Batch, Dataset, TrainingData

__all__ = ["Batch", "Dataset", "TrainingData"]
