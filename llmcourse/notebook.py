"""What every notebook of the course runs first.

`SETUP_CELL` is the exact first cell of every notebook in book/, solutions/ and exercises/ (a test
enforces it, and tools/clean_notebooks.py writes it). In Colab it installs llmcourse from the
repository; where llmcourse is importable (a local checkout, or a second run) it installs nothing.
Then `setup()` picks the device and turns on what the environment needs for widgets. The book runs
the cell but does not show it (book/_ext/course_book.py).
"""
from __future__ import annotations

import sys

import torch

from llmcourse import REPOSITORY, __version__
from llmcourse.device import pick_device

# every line fits the 88 characters of a notebook code cell
SETUP_CELL = f"""\
# Setup: installs the course package if it is missing (as in Colab), picks the device.
import importlib.util, subprocess, sys
if importlib.util.find_spec("llmcourse") is None:
    package = "llmcourse @ git+{REPOSITORY}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)
from llmcourse.notebook import setup
device = setup()"""


def is_setup_cell(source: str) -> bool:
    """Whether a cell's source is a course setup cell, this version of SETUP_CELL or an earlier one.

    >>> is_setup_cell(SETUP_CELL), is_setup_cell("import torch")
    (True, False)
    """
    starts_as_setup = source.lstrip().startswith("# Setup:")
    return starts_as_setup and "from llmcourse.notebook import setup" in source


def setup(seed: int = 0) -> torch.device:
    """Seed torch, enable Colab's widget manager when in Colab, and return the device to use (CUDA,
    MPS, else CPU)."""
    if "google.colab" in sys.modules:
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()  # third-party and embedded widgets need it in Colab
    torch.manual_seed(seed)
    device = pick_device()
    print(f"llmcourse {__version__}, torch {torch.__version__}, device: {device}")
    return device
