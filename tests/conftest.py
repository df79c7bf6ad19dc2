from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tiktoken

from llmcourse.tokenizer import GPT2_PATTERN, Tokenizer, load_gpt2

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "_build"
NOTEBOOK_DIRS = ("book", "solutions", "exercises")


def book_notebooks() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def all_notebooks() -> list[Path]:
    return sorted(p for d in NOTEBOOK_DIRS for p in (ROOT / d).glob("*.ipynb"))


@pytest.fixture(scope="session")
def built_book() -> Path:
    """The book built by the test command (scripts/test.sh builds it with warnings as errors before
    pytest runs)."""
    html, pdf = BUILD / "html" / "index.html", BUILD / "latex" / "llmcourse.pdf"
    missing = [str(p.relative_to(ROOT)) for p in (html, pdf) if not p.exists()]
    if missing:
        pytest.fail(f"the built book is missing ({', '.join(missing)}): run "
                    f"`python tools/build_book.py --strict` "
                    f"or scripts/test.sh, which builds it first")
    return BUILD


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is needed for the browser tests: apt-get install chromium "
                    "(scripts/setup.sh does it)")
    return path



@pytest.fixture(scope="session")
def gpt2() -> Tokenizer:
    """GPT-2's tokenizer, loaded by the package from its verified ranks file."""
    return load_gpt2()


@pytest.fixture(scope="session")
def gpt2_tiktoken(gpt2: Tokenizer) -> tiktoken.Encoding:
    """tiktoken built from the same verified ranks file tiktoken itself downloads for "gpt2"."""
    return tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=gpt2.ranks,
                             special_tokens={"<|endoftext|>": 50256})
