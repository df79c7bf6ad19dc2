"""One look for every figure in the course: registered as a plotly template and made the default on import."""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE_NAME = "llmcourse"

# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
SEQUENTIAL = "Blues"

_template = go.layout.Template(pio.templates["plotly_white"])
_template.layout.update(
    colorway=PALETTE,
    font=dict(family="Helvetica, Arial, sans-serif", size=14, color="#222"),
    title=dict(font=dict(size=18), x=0.02, xanchor="left"),
    margin=dict(l=60, r=30, t=70, b=60),
    hoverlabel=dict(font_size=13),
    legend=dict(bgcolor="rgba(255,255,255,0.7)"),
)
_template.data.heatmap = [go.Heatmap(colorscale=SEQUENTIAL)]
pio.templates[TEMPLATE_NAME] = _template
pio.templates.default = TEMPLATE_NAME
