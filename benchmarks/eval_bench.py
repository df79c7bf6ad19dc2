"""Part V benchmark, one measurement per process (prints one JSON line last):

    python benchmarks/eval_bench.py {ours,hflm} SHAPE

The same evaluation, run by lm-evaluation-harness on the same weights: the course's local tasks
(word order and cloze, 1,600 multiple-choice continuations; 262 held-out text pieces scored
whole), through `CourseLM` (our model and log-likelihood code) or through lm-eval's own
Hugging Face backend, HFLM, running transformers' GPT2LMHeadModel on a checkpoint saved by
`save_hf_checkpoint`. Both score the same requests with batches of 32 and agree to float
precision (tests/test_evaluation_harness.py); only the time differs.

SHAPE is `course` (the course model) or `gpt2` (GPT-2 124M's shape, random weights, with the
course tokenizer: the cost of scoring at a size where the model, not the bookkeeping, dominates;
on a fifth of the items: 50 per task and 52 text pieces).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

TASKS = ["course_order", "course_cloze", "course_text"]


def model_for(shape: str):
    from llmcourse.model.config import get_preset
    from llmcourse.training.course_model import course_model
    from llmcourse.model.gpt import GPT

    course = course_model(progress=False)
    if shape == "course":
        return course.model, course.tokenizer
    torch.manual_seed(0)
    cfg = get_preset("gpt2", vocab_size=course.tokenizer.n_vocab, context_length=64)
    return GPT(cfg).eval(), course.tokenizer


def main(side: str, shape: str) -> dict:
    from llmcourse.evaluation.harness import CourseLM, evaluate, write_tasks
    from llmcourse.evaluation.suite import course_suite
    from llmcourse.model.hf_checkpoint import save_hf_checkpoint

    model, tokenizer = model_for(shape)
    folder = Path(tempfile.mkdtemp())
    suite = course_suite(items=200 if shape == "course" else 50)
    if shape == "gpt2":
        suite.texts = suite.texts[::5]
    tasks = write_tasks(suite, folder / "tasks")
    if side == "ours":
        lm = CourseLM(model, tokenizer, batch_size=32)
    else:
        from lm_eval.models.huggingface import HFLM

        save_hf_checkpoint(model, folder / "hf", tokenizer=tokenizer)
        lm = HFLM(pretrained=str(folder / "hf"), device="cpu", batch_size=32)
    start = time.perf_counter()
    results = evaluate(lm, TASKS, include_path=tasks)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "order_acc": results["results"]["course_order"]["acc,none"],
            "bits_per_byte": results["results"]["course_text"]["bits_per_byte,none"]}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("ours", "hflm") or sys.argv[2] not in ("course",
                                                                                         "gpt2"):
        raise SystemExit("usage: eval_bench.py {ours,hflm} {course,gpt2}")
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
