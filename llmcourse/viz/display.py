"""The single display path for figures, widgets and source code.

In a live kernel (Jupyter, Colab, VS Code) a figure is shown with plotly's own renderer and a widget
as a live widget. During a book build ($LLMCOURSE_BOOK_BUILD=1, set by tools/build_book.py) each
output is one MIME bundle holding every form a builder may pick: HTML with plotly's sliders and
menus (or the widget's saved state) for the HTML book, and a PNG for the PDF. myst-nb picks by MIME
priority, so no cell needs to know which builder runs.

A printed figure cannot be dragged or hovered, so its PNG is drawn without sliders and menus, and
the bundle carries a caption (text/markdown) that says which setting the picture shows. The HTML
book never picks that caption (text/html ranks first); the book's Sphinx extension
(book/_ext/course_book.py) prints it under the PNG in the PDF.
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

from llmcourse.viz.theme import MENU_ROW, SLIDER, TOP  # importing theme also registers the template

PNG_WIDTH = 900  # the PDF's text width at a readable font size; HTML figures stay responsive
PNG_SCALE = 2

_kaleido_started = False


def in_book_build() -> bool:
    return os.environ.get("LLMCOURSE_BOOK_BUILD") == "1"


def to_png(fig: go.Figure) -> bytes:
    """Render `fig` to PNG bytes with kaleido (headless Chromium), reusing one browser for every
    figure."""
    global _kaleido_started
    if not _kaleido_started:
        import kaleido

        # the first image then costs ~10 s, later ones ~0.2 s
        kaleido.start_sync_server(silence_warnings=True)
        _kaleido_started = True
    height = fig.layout.height or 500
    with warnings.catch_warnings():
        # plotly passes browser options that a running kaleido server already has; the warning says
        # nothing useful
        warnings.filterwarnings("ignore", message="The kopts argument is ignored",
                                category=UserWarning)
        return fig.to_image(format="png", width=PNG_WIDTH, height=height, scale=PNG_SCALE)


def _controls(fig: go.Figure) -> tuple[list[str], list[str]]:
    """What a figure's sliders and menus show now, and what else they offer, as short
    phrases."""
    shown, offered = [], []
    for slider in fig.layout.sliders:
        labels = [str(step.label) for step in slider.steps]
        if labels:
            prefix = (slider.currentvalue.prefix or "").strip().rstrip(":")
            current = labels[slider.active or 0]
            shown.append(f"{prefix} {current}" if prefix else current)
            offered.append(f"a slider steps through {labels[0]} to {labels[-1]}")
    for menu in fig.layout.updatemenus:
        labels = [str(button.label) for button in menu.buttons]
        if labels:
            current = labels[menu.active or 0]
            shown.append(f"\u201c{current}\u201d in the menu")
            others = [f"\u201c{label}\u201d" for label in labels if label != current]
            offered.append("the menu switches to " + _join(others))
    return shown, offered


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def print_caption(fig: go.Figure) -> str | None:
    """The sentence printed under a figure's PNG in the PDF: which setting of its sliders and menus
    it shows. None for a figure without them. A figure whose hover text matters sets its own caption
    for print in `fig.layout.meta["print_caption"]`.

    >>> steps = [dict(label="16"), dict(label="128")]
    >>> slider = dict(steps=steps, active=1, currentvalue=dict(prefix="permutations: "))
    >>> fig = go.Figure(layout=dict(sliders=[slider]))
    >>> print(print_caption(fig))  # doctest: +NORMALIZE_WHITESPACE
    Printed at one setting: permutations 128. In the HTML book and in the notebook, a slider steps
    through 16 to 128.
    """
    meta = fig.layout.meta
    if isinstance(meta, dict) and meta.get("print_caption"):
        return meta["print_caption"]
    shown, offered = _controls(fig)
    if not shown:
        return None
    return (f"Printed at one setting: {_join(shown)}. In the HTML book and in the notebook, "
            f"{_join(offered)}.")


def _static(fig: go.Figure) -> go.Figure:
    """A copy of `fig` for print: sliders and menus removed (the caption says which setting it
    shows), and the room they took (theme.MENU_ROW above the plot, theme.SLIDER below it) given
    back."""
    static = go.Figure(fig)
    top = MENU_ROW if fig.layout.updatemenus else 0
    bottom = SLIDER if fig.layout.sliders else 0
    margin = fig.layout.margin
    # update_layout(sliders=[]) would keep them
    static.layout.sliders, static.layout.updatemenus = [], []
    static.update_layout(height=(fig.layout.height or 500) - top - bottom,
                         margin=dict(t=(TOP if margin.t is None else margin.t) - top,
                                     b=(60 if margin.b is None else margin.b) - bottom))
    return static


# plotly's toolbar, kept short so that it stays clear of a figure's title; no "share" button, which
# would upload the figure to a plotly server
TOOLBAR_REMOVED = [
    "sendChartToCloud", "select2d", "lasso2d", "zoomIn2d", "zoomOut2d", "autoScale2d",
]


def _html(fig: go.Figure) -> str:
    # plotly.js itself is loaded once per page by the book (see _config.yml), not embedded in every
    # figure.
    config = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": TOOLBAR_REMOVED}
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, default_width="100%",
                       config=config)


def _print_form(fig: go.Figure, caption: str | None) -> dict[str, Any]:
    """The PNG the PDF shows and, if there is one, the caption printed under it."""
    caption = caption if caption is not None else print_caption(fig)
    text = {"text/markdown": _emphasis(caption)} if caption else {}
    return {"image/png": to_png(_static(fig)), **text}


def _emphasis(text: str) -> str:
    """`text` as one italic Markdown paragraph; characters Markdown would read as markup are
    escaped."""
    return "*" + re.sub(r"([\\`*_<>\[\]#|])", r"\\\1", text) + "*"


def show(fig: go.Figure, caption: str | None = None) -> None:
    """Show a plotly figure: interactive everywhere, and a PNG in the PDF. `caption` replaces the
    printed line that says which setting of the sliders and menus the PNG shows (see
    print_caption)."""
    if not in_book_build():
        fig.show(config={"displaylogo": False, "modeBarButtonsToRemove": TOOLBAR_REMOVED})
        return
    title = fig.layout.title.text or "figure"
    bundle = {"text/html": _html(fig), **_print_form(fig, caption), "text/plain": f"<{title}>"}
    display(bundle, raw=True)


def widget_caption(snapshot: go.Figure) -> str:
    """The printed line under a widget's snapshot: it is the starting state, and the controls need
    a kernel."""
    shown, _ = _controls(snapshot)
    setting = f" ({_join(shown)})" if shown else ""
    return (f"Printed: the widget's starting state{setting}, drawn as a figure. Its controls need "
            f"a running notebook (Jupyter or Colab).")


def show_widget(widget: Any, snapshot: go.Figure, caption: str | None = None) -> None:
    """Show an ipywidget live in a kernel. In the book, its saved state renders in HTML and
    `snapshot` (a figure of what the widget currently shows) stands in for it in the PDF, never
    `VBox(...)` text, with `caption` (by default widget_caption(snapshot)) printed under it."""
    if not in_book_build():
        display(widget)
        return
    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    display({**data, **_print_form(snapshot, caption or widget_caption(snapshot))}, raw=True)


LIVE_NOTE = ("This live widget appears only in a running notebook (Jupyter or Colab), because it "
             "computes on every change; the figure above is its static form.")


def show_live(widget: Any, note: str = LIVE_NOTE) -> None:
    """Show a widget that only makes sense with a kernel behind it (it recomputes on every change).
    The static book shows `note` in its place, in HTML and PDF, so the reader knows what is missing
    and where to find it."""
    if not in_book_build():
        display(widget)
        return
    display({"text/markdown": _emphasis(note), "text/plain": note}, raw=True)


def show_source(obj: Any) -> None:
    """Show the source of a package function or class as highlighted code, in Jupyter, Colab, HTML
    and PDF.

    Chapters use it to show the package's real implementation rather than a copy that could drift
    from it.
    """
    source = inspect.getsource(obj)
    longest_run = max((len(run) for run in re.findall(r"`+", source)), default=0)
    fence = "`" * max(3, longest_run + 1)
    location = f"{inspect.getmodule(obj).__name__}.{obj.__qualname__}"
    markdown = f"`{location}`\n\n{fence}python\n{source}{fence}\n"
    display({"text/markdown": markdown, "text/plain": source}, raw=True)
