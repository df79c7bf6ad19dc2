"""Store notebooks reviewably: kernelspec, language name and the course's own metadata only, no editor metadata, and
no outputs for book/ notebooks (the book build executes them). solutions/ keep their outputs, because nbval compares
the pinned ones: `--execute` runs a notebook and stores its fresh outputs first.

A first cell that is a course setup cell is rewritten to the current `llmcourse.notebook.SETUP_CELL`, so that a change
to the setup cell reaches every notebook by running this tool (then `python -m llmcourse exercises` for exercises/).

    python tools/clean_notebooks.py [--execute] [PATH ...]   # default: every notebook in book/ and solutions/
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from llmcourse.notebook import SETUP_CELL, is_setup_cell

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def clean(path: Path) -> bool:
    """Rewrite `path` clean; return whether anything changed."""
    before = path.read_text()
    nb = nbformat.reads(before, as_version=4)
    course = {"llmcourse": nb.metadata["llmcourse"]} if "llmcourse" in nb.metadata else {}
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}, **course})
    keep_outputs = path.parent.name != "book"
    first = nb.cells[0] if nb.cells else None
    if first is not None and first.cell_type == "code" and is_setup_cell(first.source) and first.source != SETUP_CELL:
        first.source = SETUP_CELL
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k == "tags"})
        if cell.cell_type == "code" and not keep_outputs:
            cell.outputs, cell.execution_count = [], None
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after)
    return after != before


def execute(path: Path) -> None:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)


def main(args: list[str]) -> None:
    run_first = "--execute" in args
    paths = [a for a in args if a != "--execute"]
    targets = [Path(p) for p in paths] or sorted([*ROOT.glob("book/*.ipynb"), *ROOT.glob("solutions/*.ipynb")])
    for path in targets:
        if run_first:
            execute(path)
        if clean(path):
            print(f"cleaned {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
