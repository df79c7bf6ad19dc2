"""The single display path for figures, widgets and source code.

In a live kernel (Jupyter, Colab, VS Code) a figure is shown with plotly's own renderer and a widget as a live widget.
During a book build ($LLMCOURSE_BOOK_BUILD=1, set by tools/build_book.py) each output is one MIME bundle holding every
form a builder may pick: HTML with plotly's sliders and menus (or the widget's saved state) for the HTML book, and a PNG
for the PDF. myst-nb picks by MIME priority, so no cell needs to know which builder runs.
"""
from __future__ import annotations

import inspect
import os
import re
import warnings
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display

from llmcourse.viz import theme  # noqa: F401  (registers the template)

PNG_WIDTH = 900  # the PDF's text width at a readable font size; HTML figures stay responsive
PNG_SCALE = 2

_kaleido_started = False


def in_book_build() -> bool:
    return os.environ.get("LLMCOURSE_BOOK_BUILD") == "1"


def to_png(fig: go.Figure) -> bytes:
    """Render `fig` to PNG bytes with kaleido (headless Chromium), reusing one browser for every figure."""
    global _kaleido_started
    if not _kaleido_started:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)  # the first image then costs ~10 s, later ones ~0.2 s
        _kaleido_started = True
    height = fig.layout.height or 500
    with warnings.catch_warnings():
        # plotly passes browser options that a running kaleido server already has; the warning says nothing useful
        warnings.filterwarnings("ignore", message="The kopts argument is ignored", category=UserWarning)
        return fig.to_image(format="png", width=PNG_WIDTH, height=height, scale=PNG_SCALE)


def _html(fig: go.Figure) -> str:
    # plotly.js itself is loaded once per page by the book (see _config.yml), not embedded in every figure.
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, default_width="100%",
                       config={"displaylogo": False, "responsive": True})


def show(fig: go.Figure) -> None:
    """Show a plotly figure: interactive everywhere, and a PNG in the PDF."""
    if not in_book_build():
        fig.show()
        return
    title = fig.layout.title.text or "figure"
    display({"text/html": _html(fig), "image/png": to_png(fig), "text/plain": f"<{title}>"}, raw=True)


def show_widget(widget: Any, snapshot: go.Figure) -> None:
    """Show an ipywidget live in a kernel. In the book, its saved state renders in HTML and `snapshot`
    (a figure of what the widget currently shows) stands in for it in the PDF, never `VBox(...)` text."""
    if not in_book_build():
        display(widget)
        return
    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    display({**data, "image/png": to_png(snapshot)}, raw=True)


def show_live(widget: Any) -> None:
    """Show a widget that only makes sense with a kernel behind it (it recomputes on every change). The static book
    leaves it out; the figure next to it is the interactive form there."""
    if not in_book_build():
        display(widget)


def show_source(obj: Any) -> None:
    """Show the source of a package function or class as highlighted code, in Jupyter, Colab, HTML and PDF.

    Chapters use it to show the package's real implementation rather than a copy that could drift from it.
    """
    source = inspect.getsource(obj)
    longest_run = max((len(run) for run in re.findall(r"`+", source)), default=0)
    fence = "`" * max(3, longest_run + 1)
    location = f"{inspect.getmodule(obj).__name__}.{obj.__qualname__}"
    display({"text/markdown": f"`{location}`\n\n{fence}python\n{source}{fence}\n", "text/plain": source}, raw=True)
