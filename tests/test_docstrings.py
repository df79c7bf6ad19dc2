"""The worked examples in the package's docstrings are run, so that they cannot drift from the
code."""
import doctest
import importlib.util
import pkgutil

import pytest

import llmcourse

MODULES = sorted(m.name for m in pkgutil.walk_packages(llmcourse.__path__, "llmcourse.")
                 if ">>>" in (importlib.util.find_spec(m.name).loader.get_source(m.name) or ""))


def test_the_examples_are_found():
    assert len(MODULES) >= 15


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(importlib.import_module(module), optionflags=flags)
    assert result.attempted > 0 and result.failed == 0
