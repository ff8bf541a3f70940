"""Datasets: 2D toys with exact densities, files of points, MNIST.

Importing this package registers the built-in datasets.
"""

from . import mnist, toy2d  # noqa: F401 - they register their datasets
from .base import Batch, Dataset, TrainingData

__all__ = ["Batch", "Dataset", "TrainingData"]
