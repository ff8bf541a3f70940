"""The live playground: a Gradio page that trains generative models and draws them as they learn.

playground.app builds the page, playground.session holds per-tab runs and the
cap on concurrent training, playground.figures/equations/export turn
snapshots into pictures.
"""
