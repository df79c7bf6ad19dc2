"""Progress bars that a book build can switch off.

tqdm reads TQDM_DISABLE only as a default, and its notebook bar passes `disable` explicitly, so the
variable alone does not silence bars in a kernel: the book build would then save a widget bar into
the page. Every bar of the package comes from here, which honours TQDM_DISABLE=1 wherever it runs.
"""
from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm


def bars_on(enabled: bool = True) -> bool:
    """Whether progress is shown: `enabled`, and TQDM_DISABLE is not set (a book build sets it)."""
    return enabled and os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")


def progress_bar(iterable: Any = None, enabled: bool = True, **options: Any) -> tqdm:
    """tqdm.auto's bar (a widget in a notebook, text in a terminal), unless `enabled` is False or
    TQDM_DISABLE=1."""
    return tqdm(iterable, disable=not bars_on(enabled), **options)
