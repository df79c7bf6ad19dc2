"""Store notebooks reviewably: kernelspec and language name only, no editor metadata, and no outputs for book/
notebooks (the book build executes them). solutions/ keep their outputs: nbval compares the pinned ones.

    python tools/clean_notebooks.py [PATH ...]     # default: every notebook in book/ and solutions/
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def clean(path: Path) -> bool:
    """Rewrite `path` clean; return whether anything changed."""
    before = path.read_text()
    nb = nbformat.reads(before, as_version=4)
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC, "language_info": {"name": "python"}})
    keep_outputs = path.parent.name != "book"
    for cell in nb.cells:
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k == "tags"})
        if cell.cell_type == "code" and not keep_outputs:
            cell.outputs, cell.execution_count = [], None
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after)
    return after != before


def main(paths: list[str]) -> None:
    targets = [Path(p) for p in paths] or sorted([*ROOT.glob("book/*.ipynb"), *ROOT.glob("solutions/*.ipynb")])
    for path in targets:
        if clean(path):
            print(f"cleaned {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
