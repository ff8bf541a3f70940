"""Drawing helpers shared by every family's view: numbers in, Plotly figures out.

    layout.py   colours, the template, titles that fit a panel, layouts and axes
    marks.py    safe inputs and the marks: points, lines, meshes, arrows, heatmaps
    digits.py   image data drawn as tiles of digits, and the samples panel
    charts.py   charts over training time: loss terms, metrics, modes covered, the ELBO

`from playground import draw as V` gives layout's and marks' names in one place.
"""

from .layout import *  # noqa: F401,F403
from .layout import TEMPLATE, Unavailable, base_layout, blank, empty_figure, figure  # noqa: F401 - the common ones, named
from .marks import *  # noqa: F401,F403
