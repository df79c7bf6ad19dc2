"""Views: plotly figures and ipywidgets, and the one display path that makes them work in Jupyter,
Colab, the static HTML book (interactive, no kernel) and the PDF (PNG images). Views take plain
tensors, arrays and dicts; the core package never imports them."""
from llmcourse.viz.display import in_book_build, show, show_live, show_source, show_widget, to_png
from llmcourse.viz.theme import TEMPLATE_NAME

__all__ = [
    "TEMPLATE_NAME", "in_book_build", "show", "show_live", "show_source", "show_widget", "to_png",
]
