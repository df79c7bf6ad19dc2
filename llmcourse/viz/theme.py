"""One look for every figure in the course: registered as a plotly template and made the default on
import.

It also fixes where controls go, so that none covers another part of a figure: the title sits at the
top left, a menu in its own row under the title, plotly's toolbar at the top right (kept short, see
display.py), and a slider under the x axis, below its tick labels and title.
"""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE_NAME = "llmcourse"

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SEQUENTIAL = "Blues"

TOP = 60  # pixels above the plot for the title
MENU_ROW = 42  # more pixels above the plot when a menu sits under the title
SLIDER = 95  # pixels a slider takes: its current value, the rail and the step labels

_template = go.layout.Template(pio.templates["plotly_white"])
_template.layout.update(
    colorway=PALETTE,
    font=dict(family="Helvetica, Arial, sans-serif", size=14, color="#222"),
    title=dict(font=dict(size=18), x=0.02, xanchor="left",
               y=1, yref="container", yanchor="top", pad=dict(t=16)),
    margin=dict(l=60, r=30, t=TOP, b=60),
    hoverlabel=dict(font_size=13),
    legend=dict(bgcolor="rgba(255,255,255,0.7)"),
)
_template.data.heatmap = [go.Heatmap(colorscale=SEQUENTIAL)]
pio.templates[TEMPLATE_NAME] = _template
pio.templates.default = TEMPLATE_NAME


def menu_under_title(buttons: Sequence[dict], active: int = 0) -> dict:
    """A dropdown in its own row between the title and the plot, at the left: the title stays
    readable and the toolbar (top right) never covers it. The figure needs a top margin of
    TOP + MENU_ROW (more for a subtitle)."""
    return dict(buttons=list(buttons), active=active, direction="down",
                x=0, xanchor="left", y=1, yanchor="bottom", pad=dict(b=8), showactive=True)


def slider_below(steps: Sequence[dict], active: int, prefix: str, clearance: int) -> dict:
    """A slider under the plot, `clearance` pixels below the plot's bottom edge: enough for the x
    tick labels and the axis title. The figure needs a bottom margin of clearance + SLIDER."""
    return dict(steps=list(steps), active=active, x=0, len=1, xanchor="left", y=0, yanchor="top",
                pad=dict(t=clearance, b=10), currentvalue=dict(prefix=prefix, xanchor="left"))
