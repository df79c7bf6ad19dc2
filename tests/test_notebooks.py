"""Every notebook starts with the same setup cell, is stored clean, and is listed in the book."""
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, all_notebooks, book_notebooks

from llmcourse import REPOSITORY
from llmcourse.notebook import SETUP_CELL


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_first_cell_is_the_setup_cell(path):
    first = load(path)["cells"][0]
    assert first["cell_type"] == "code" and "".join(first["source"]) == SETUP_CELL


@pytest.mark.parametrize("path", book_notebooks(), ids=lambda p: p.name)
def test_book_notebooks_are_stored_without_outputs_and_with_clean_metadata(path):
    nb = load(path)
    assert nb["metadata"].keys() <= {"kernelspec", "language_info"}
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        assert set(cell.get("metadata", {})) <= {"tags"}


def test_every_book_notebook_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for path in book_notebooks():
        assert f"file: book/{path.stem}\n" in toc


def test_config_points_colab_at_the_package_repository():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == REPOSITORY
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert re.search(r"git\+" + re.escape(REPOSITORY), SETUP_CELL)


MAX_CODE_LINE = 88  # what the book's column shows without scrolling (book/assets/course.css)


@pytest.mark.parametrize("path",
                         [p for p in all_notebooks() if p.parent.name in ("book", "solutions")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_code_lines_fit_the_book_column(path):
    long = [f"cell {i}: {line}" for i, cell in enumerate(load(path)["cells"])
            if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > MAX_CODE_LINE]
    assert long == [], (f"{len(long)} code lines longer than {MAX_CODE_LINE} characters:\n"
                        + "\n".join(long))


def test_the_setup_cell_fits_the_book_column():
    assert max(len(line) for line in SETUP_CELL.splitlines()) <= MAX_CODE_LINE
