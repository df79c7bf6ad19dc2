"""The grader and the in-notebook checks, against honest, broken and hostile notebooks.

Hostile notebooks are built from the real solutions and exercises, so they follow the course as it
changes."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from llmcourse.foundations.bigram import bigram_counts
from llmcourse.grading import chapter_exercises, check
from llmcourse.grading.feedback import run_check
from llmcourse.grading.generate import generate, strip_solutions
from llmcourse.grading.grader import grade_notebook

SOLUTIONS = ROOT / "solutions" / "ch01_language_models.ipynb"
EXERCISES = ROOT / "exercises" / "ch01_language_models.ipynb"
FULL = sum(e.points for e in chapter_exercises(1))  # 10
POINTS = {e.id: e.points for e in chapter_exercises(1)}
FAST = dict(cell_timeout=10, exercise_timeout=4)


def variant(tmp_path: Path, base: Path, edit) -> Path:
    """A copy of `base` changed by `edit(cells)`, where cells is a list of sources (code cells
    only)."""
    nb = nbformat.read(base, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    cells = edit(cells)
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    path = tmp_path / "ch01_submission.ipynb"
    nbformat.write(nb, path)
    return path


def defining(cells, name):
    return next(i for i, src in enumerate(cells) if f"def {name}(" in src)


def replace_function(cells, name, body):
    cells = list(cells)
    cells[defining(cells, name)] = body
    return cells


def without_checks(cells):
    return [src for src in cells if "check(" not in src]


def score(path):
    grade = grade_notebook(path, **FAST)
    return grade.score, {r.exercise: r.status for r in grade.results}, grade


# --- the two reference points ---------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted((ROOT / "solutions").glob("*.ipynb")), ids=lambda p: p.name)
def test_solutions_get_full_marks(path):
    grade = grade_notebook(path, **FAST)
    assert grade.score == grade.max_score > 0
    assert {r.status for r in grade.results} == {"passed"}


@pytest.mark.parametrize("path", sorted((ROOT / "exercises").glob("*.ipynb")), ids=lambda p: p.name)
def test_untouched_exercises_get_zero(path):
    grade = grade_notebook(path, **FAST)
    assert grade.score == 0 and {r.status for r in grade.results} == {"not attempted"}


def test_every_chapter_with_exercises_has_at_least_four():
    from llmcourse.grading.exercise import CHAPTER_MODULES

    assert all(len(chapter_exercises(c)) >= 4 for c in CHAPTER_MODULES)


def test_exercises_are_generated_from_solutions_and_up_to_date():
    assert generate(ROOT / "solutions", ROOT / "exercises", check_only=True) == []


# --- hostile and broken notebooks -----------------------------------------------------------------

def test_infinite_loops_in_a_cell_and_in_a_function(tmp_path):
    def edit(cells):
        body = "def count_bigrams(ids, vocab_size):\n    while True:\n        pass"
        cells = replace_function(cells, "count_bigrams", body)
        return cells[:2] + ["while True:\n    pass"] + cells[2:]
    got, statuses, grade = score(variant(tmp_path, SOLUTIONS, edit))
    assert statuses["1.1"] == "error" and got == FULL - POINTS["1.1"]
    assert any("timed out" in p for p in grade.problems)


def test_a_notebook_that_kills_its_kernel(tmp_path):
    def edit(cells):
        body = "import os\ndef sequence_nll(probs, ids):\n    os._exit(1)"
        cells = replace_function(cells, "sequence_nll", body)
        return cells + ["import os\nos._exit(3)"]
    got, statuses, grade = score(variant(tmp_path, SOLUTIONS, edit))
    # 1.4 calls the learner's own sequence_nll, so it goes down with it
    assert statuses["1.3"] == statuses["1.4"] == "error"
    assert got == FULL - POINTS["1.3"] - POINTS["1.4"]
    assert any("crashed the kernel" in p for p in grade.problems)


def test_raising_cells_sys_exit_and_a_raising_function(tmp_path):
    def edit(cells):
        body = "def bigram_probs(counts, alpha):\n    raise ValueError('no')"
        cells = replace_function(cells, "bigram_probs", body)
        return cells[:2] + ["raise RuntimeError('boom')", "import sys\nsys.exit(0)"] + cells[2:]
    got, statuses, _ = score(variant(tmp_path, SOLUTIONS, edit))
    assert statuses["1.2"] == "error" and got == FULL - POINTS["1.2"]


def test_fake_check_fake_prints_and_deleted_check_cells(tmp_path):
    def edit(cells):
        fake = ("def check(*args, **kwargs):\n    print('✅ passed all cases')\n"
                "print('Exercise 1.1: passed\\nScore: 10/10')")
        return without_checks(cells) + [fake, "check('1.1', count_bigrams)"]
    got, _, _ = score(variant(tmp_path, EXERCISES, edit))
    assert got == 0


def test_correct_work_counts_even_with_its_check_cells_deleted(tmp_path):
    got, _, _ = score(variant(tmp_path, SOLUTIONS, without_checks))
    assert got == FULL


def test_monkeypatching_torch_comparisons_fakes_nothing(tmp_path):
    patch = ("import torch\n"
             "torch.equal = lambda *a, **k: True\n"
             "torch.allclose = lambda *a, **k: True\n"
             "torch.isclose = lambda a, b, **k: "
             "torch.ones(torch.as_tensor(a).shape, dtype=torch.bool)\n"
             "def count_bigrams(ids, vocab_size):\n"
             "    return torch.zeros(vocab_size, vocab_size, dtype=torch.long)\n"
             "def sequence_nll(probs, ids):\n    return 0.0\n")
    got, statuses, _ = score(variant(tmp_path, EXERCISES, lambda cells: cells + [patch]))
    assert got == 0 and statuses["1.1"] == statuses["1.3"] == "failed"


def test_monkeypatching_the_reference_and_the_grader_fakes_nothing(tmp_path):
    patch = ("import torch, llmcourse.foundations.bigram, llmcourse.model.sizing\n"
             "import llmcourse.grading.feedback as fb\n"
             "import llmcourse.grading.exercise as ex\n"
             "wrong = lambda ids, vocab_size: "
             "torch.zeros(vocab_size, vocab_size, dtype=torch.long)\n"
             "llmcourse.foundations.bigram.bigram_counts = wrong\n"
             "llmcourse.model.sizing.parameter_count = lambda cfg: 7\n"
             "ex.same_tensor = ex.exact_int = lambda *a, **k: None\n"
             "fb.judge = lambda *a, **k: None\n"
             "count_bigrams = wrong\n"
             "def count_parameters(*args):\n    return 7\n")
    got, statuses, _ = score(variant(tmp_path, EXERCISES, lambda cells: cells + [patch]))
    assert got == 0 and statuses["1.1"] == statuses["1.5"] == "failed"


def test_wrong_types_and_unpicklable_tricks_score_zero(tmp_path):
    patch = ("import numpy as np, os\n"
             "class Evil:\n    def __reduce__(self):\n        return (os.system, ('echo pwned',))\n"
             "def count_bigrams(ids, vocab_size):\n    return np.zeros((vocab_size, vocab_size))\n"
             "def bigram_probs(counts, alpha):\n    return Evil()\n"
             "def sequence_nll(probs, ids):\n    return [1.0]\n"
             "count_parameters = 124439808\n")
    got, statuses, _ = score(variant(tmp_path, EXERCISES, lambda cells: cells + [patch]))
    assert got == 0
    assert statuses["1.1"] == statuses["1.2"] == "error" and statuses["1.5"] == "not attempted"


# --- the command line -----------------------------------------------------------------------------

def run_cli(*args):
    command = [sys.executable, "-m", "llmcourse", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def test_cli_writes_the_json_report_and_gradescope_results(tmp_path):
    report, gradescope = tmp_path / "report.json", tmp_path / "results.json"
    result = run_cli("grade", str(SOLUTIONS), "--json", str(report),
                     "--gradescope", str(gradescope))
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["score"] == data["max_score"] == FULL
    assert {e["id"] for e in data["exercises"]} == set(POINTS)
    assert all({"score", "max_score", "message"} <= e.keys() for e in data["exercises"])
    assert json.loads(gradescope.read_text())["score"] == FULL


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.ipynb", "no such file"),
    (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", "not a notebook"),
    (lambda d: (d / "ch01_broken.ipynb").write_text("{not json") and d / "ch01_broken.ipynb",
     "not a valid"),
    (lambda d: nbformat.write(nbformat.v4.new_notebook(), d / "ch42_x.ipynb") or d / "ch42_x.ipynb",
     "no exercises"),
    (lambda d: nbformat.write(nbformat.v4.new_notebook(), d / "essay.ipynb") or d / "essay.ipynb",
     "which chapter"),
])
def test_cli_rejects_what_it_cannot_grade_and_writes_nothing(tmp_path, make, message):
    path, report = make(tmp_path), tmp_path / "out" / "report.json"
    result = run_cli("grade", str(SOLUTIONS), str(path), "--json", str(report))
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not report.exists()


# --- in-notebook feedback -------------------------------------------------------------------------

def test_check_passes_the_reference_and_explains_a_wrong_type(capsys):
    check("1.1", bigram_counts)
    check("1.1", lambda ids, v: ids.tolist())
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✅ Exercise 1.1") and "expected a torch.Tensor of shape" in out[1]


def test_check_survives_loops_exits_and_unknown_ids(capsys):
    def forever(ids, v):
        while True:
            pass

    assert run_check("1.1", forever, time_limit_s=0.5).status == "timed out"
    assert run_check("1.1", lambda ids, v: sys.exit(1)).status == "error"
    check("7.7", bigram_counts)
    assert "unknown exercise '7.7'" in capsys.readouterr().out


def test_check_does_not_let_learner_code_mutate_the_reference_inputs():
    def vandal(ids, vocab_size):
        counts = bigram_counts(ids, vocab_size)
        ids.zero_()  # in-place damage to its input
        return counts

    assert run_check("1.1", vandal).status == "passed"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION 1.1\n", "never ended"),
    ("### END SOLUTION\n", "without a BEGIN"),
    ("### BEGIN SOLUTION 1.1\n### BEGIN SOLUTION 1.2\n", "inside the solution"),
    ("### BEGIN SOLUTION 9.9\n### END SOLUTION\n", "unknown exercise"),
])
def test_malformed_solution_markers_are_reported(source, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(source)
