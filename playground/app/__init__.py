"""The live playground: pick a model and a dataset, press Play, watch it learn.

    status.py    pure functions: what the controls and the status line show
    handlers.py  the handlers, (session, plain values) -> {output name: value}
    drawing.py   a sketch turned into points, and a drawing as a figure or a file
    share.py     exports, the Compare tab, the run as data, a closed tab
    wiring.py    named components, and handlers turned into Gradio callbacks
    layout.py    one Blocks layout with the event wiring at the bottom: build_app

Knobs and links come from playground.controls, training and snapshots from
playground.runs, pictures from playground.views and playground.export.
"""

from ..controls import knob_key, knobs_for
from .handlers import (apply_preset, on_dataset, on_draw, on_draw_download, on_draw_preview, on_family, on_knob, on_load,
                       on_model, on_upload, on_view_control, pause, play, redraw_charts, reset, set_redraw, step,
                       step_phase, tick)
from .layout import CSS, build_app, keep_idle_connections, serve_many, use_one_thread_per_run
from .share import compare, compare_choices, compare_live, export_gif, export_png, export_weights, run_state
from .status import (DEFAULT_REDRAW, METRIC_CHOICES, REDRAW, SLOTS, control_updates, dataset_choices, format_status,
                     knob_updates, panel_updates, placement)

__all__ = ["CSS", "DEFAULT_REDRAW", "METRIC_CHOICES", "REDRAW", "SLOTS", "apply_preset", "build_app", "compare",
           "compare_choices", "compare_live", "control_updates", "dataset_choices", "export_gif", "export_png",
           "export_weights", "format_status", "keep_idle_connections",
           "knob_key", "knob_updates", "knobs_for", "on_dataset", "on_draw", "on_draw_download", "on_draw_preview",
           "on_family", "on_knob", "on_load", "on_model",
           "on_upload", "on_view_control", "panel_updates", "pause", "placement", "play", "redraw_charts", "reset",
           "run_state", "serve_many", "set_redraw", "step", "step_phase", "tick", "use_one_thread_per_run"]
