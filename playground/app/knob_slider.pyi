"""The knobs' slider: Gradio's own, drawn the same, with its range left to the model's config.

One slider serves a knob of every model (a flow's 10 layers, a VAE's at most 8), and a page
that sends a change before it has shown the model before sends that model's values. Gradio's
slider refuses such an event outright ("Value 10 is greater than maximum value 8"), dropping
the change it carried; the handlers instead take the run's own settings for a page that is
behind, and the model's config refuses an impossible value by name. (Gradio writes the
`.pyi` beside this file for a component class; it is kept so that nothing is written at run time.)
"""

from __future__ import annotations

import gradio as gr

from gradio.events import Dependency

class KnobSlider(gr.Slider):
    is_template = True  # drawn by Gradio's own slider

    def preprocess(self, payload: float | None) -> float | None:
        return None if payload is None else gr.Number.round_to_precision(payload, self.precision)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component