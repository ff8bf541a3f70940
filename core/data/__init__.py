"""Datasets: 2D toys with exact densities, files of points, MNIST."""

from .base import Dataset

__all__ = ["Dataset"]
