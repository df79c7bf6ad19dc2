r"""Sphinx glue that shapes the book's pages, in HTML and PDF alike.

1. Every chapter notebook starts with the setup cell (`llmcourse.notebook.SETUP_CELL`), which installs the package in
   Colab. It runs during the build, but a reader of the book needs none of it; shown, it sits above the chapter's
   title, and in the PDF it lands alone on the page before the chapter. The cell is dropped from the page.
2. A figure's output carries a PNG for print and, when the figure has sliders or menus, a caption saying which setting
   the PNG shows (llmcourse.viz.display). myst-nb keeps one form of each output; in the PDF the caption is kept too,
   under the image.
3. A cell that prints piece by piece (streamed generation, `print(..., end="")`) leaves one stream output per
   write; myst-nb shows each in a box of its own, and its `nb_merge_streams` option ends every piece with a newline.
   Consecutive pieces of the same stream are joined here, exactly as a terminal would show them.
4. LaTeX numbers every chapter, while the book numbers only chapters 1 to 5 (`numbered` in _toc.yml): in the PDF,
   the pages outside a numbered part (the appendix) are wrapped in \courseunnumbered ... \coursenumbered
   (book/assets/coursebook.sty), so they take no chapter number and the numbered chapters keep the text's numbers.
"""
from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

from llmcourse.notebook import is_setup_cell


def _is(element: str):
    return lambda node: isinstance(node, nodes.container) and node.get("nb_element") == element


def drop_setup_cell(app: Sphinx, doctree: nodes.document) -> None:
    """Remove the first code cell of a notebook page when it is the setup cell."""
    first = next(iter(doctree.findall(_is("cell_code"))), None)
    if first is None or first.get("cell_index") != 0:
        return
    source = next(iter(first.findall(nodes.literal_block)), None)
    if source is not None and is_setup_cell(source.astext()):
        first.parent.remove(first)


def _stream(node: nodes.Node) -> str | None:
    """'stream' (stdout) or 'stderr' for a stream output's code block, else None."""
    if not isinstance(node, nodes.literal_block):
        return None
    return next((kind for kind in ("stream", "stderr") if kind in node["classes"]), None)


def join_streams(app: Sphinx, doctree: nodes.document) -> None:
    """Join consecutive pieces of one stream in a cell's output into a single block, adding nothing between them."""
    for output in doctree.findall(_is("cell_code_output")):
        first = None
        for node in list(output.children):
            kind = _stream(node)
            if kind is not None and first is not None and _stream(first) == kind:
                text = first.astext() + node.astext()
                first.children = [nodes.Text(text)]
                first.rawsource = text
                output.remove(node)
            else:
                first = node if kind is not None else None


class PrintCaptions(SphinxPostTransform):
    """In the PDF, an output that holds a PNG and Markdown shows both: the image, then its caption."""

    builders = ("latex",)
    default_priority = 3  # before myst-nb's SelectMimeType (4) keeps a single form of every output

    def run(self, **kwargs: Any) -> None:
        for bundle in list(self.document.findall(_is("mime_bundle"))):
            forms = {child.get("mime_type"): child for child in bundle.children}
            if "image/png" in forms and "text/markdown" in forms:
                bundle.replace_self(forms["image/png"].children + forms["text/markdown"].children)


class UnnumberedChapters(SphinxPostTransform):
    """In the PDF, chapters that the table of contents leaves unnumbered take no LaTeX chapter number either."""

    builders = ("latex",)
    default_priority = 710  # after sphinx-jupyterbook-latex has arranged the parts (700)

    def run(self, **kwargs: Any) -> None:
        numbered = self.env.toc_secnumbers
        for chapter in list(self.document.findall(addnodes.start_of_file)):
            docname = chapter.get("docname")
            if docname not in self.env.found_docs or docname == self.config.root_doc or numbered.get(docname):
                continue
            parent = chapter.parent
            parent.insert(parent.index(chapter), nodes.raw("", "\\courseunnumbered\n", format="latex"))
            parent.insert(parent.index(chapter) + 1, nodes.raw("", "\\coursenumbered\n", format="latex"))


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("doctree-read", drop_setup_cell)
    app.connect("doctree-read", join_streams)
    app.add_post_transform(PrintCaptions)
    app.add_post_transform(UnnumberedChapters)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
