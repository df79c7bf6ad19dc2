"""What every notebook of the course runs first.

`SETUP_CELL` is the exact first cell of every notebook in book/, solutions/ and exercises/ (a test enforces it). In Colab
it installs llmcourse from the repository; where llmcourse is importable (a local checkout, or a second run) it installs
nothing. Then `setup()` picks the device and turns on what the environment needs for widgets.
"""
from __future__ import annotations

import sys

import torch

from llmcourse import REPOSITORY, __version__
from llmcourse.device import pick_device

SETUP_CELL = f"""\
# Setup: in Colab this installs the course package; where it is installed already, it does nothing.
import importlib.util, subprocess, sys
if importlib.util.find_spec("llmcourse") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "llmcourse @ git+{REPOSITORY}"], check=True)
from llmcourse.notebook import setup
device = setup()"""


def setup(seed: int = 0) -> torch.device:
    """Seed torch, enable Colab's widget manager when in Colab, and return the device to use (CUDA, MPS, else CPU)."""
    if "google.colab" in sys.modules:
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()  # third-party and embedded widgets need it in Colab
    torch.manual_seed(seed)
    device = pick_device()
    print(f"llmcourse {__version__}, torch {torch.__version__}, device: {device}")
    return device
