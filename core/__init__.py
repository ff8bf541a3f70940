"""Generative Playground core: models, datasets, trainer, metrics and CLI.

Torch and numpy only; the playground (Gradio, Plotly) is built on top.
"""

from .registry import build_model, dataset_names, families, load_dataset, model_names

__all__ = ["build_model", "dataset_names", "families", "load_dataset", "model_names"]
