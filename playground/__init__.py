"""The live playground: a Gradio page that trains generative models and draws them as they learn.

    app/        the page: layout, handlers, wiring
    runs/       the cap on concurrent training, runs and per-tab sessions
    views/      one module per family: its panels, controls, equations and export picture
    draw/       the drawing helpers every view shares, and the charts over training time
    controls.py knobs and links from the registry's config metadata
    export.py   PNG and GIF pictures of a run; presets.py the guided experiments
"""
