"""`llmcourse eval CHECKPOINT`: the report card of a model, the one the evaluation chapter shows.

    llmcourse eval all                       # the course model after pretraining, SFT and DPO
    llmcourse eval runs/course --json s.json # a run of `llmcourse train` (or of the trainer)
    llmcourse eval dpo --harness hellaswag,arc_easy --limit 200   # and lm-eval's tasks (online)
    llmcourse eval all --audit               # and the contamination audit of the course's data
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

STAGES = {"course": "pretrained", "sft": "SFT", "dpo": "DPO"}


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a run folder (checkpoint.pt, tokenizer.json), or "
                                           "one of the course model's stages: course, sft, dpo, "
                                           "all")
    parser.add_argument("--items", type=int, default=200,
                        help="multiple-choice items per task (default 200)")
    parser.add_argument("--prompt", choices=["auto", "plain", "chat"], default="auto",
                        help="how questions are asked (auto: the chat template if the tokenizer "
                             "has its tokens)")
    parser.add_argument("--pairs", help="held-out preference pairs (JSON Lines) for a run folder; "
                                        "the course's stages use chapter 9's")
    parser.add_argument("--json", help="write every score here")
    parser.add_argument("--audit", action="store_true",
                        help="also audit the course's evaluation sets for contamination: every "
                             "training source against every set, by exact, near-duplicate and "
                             "shared-run checks")
    parser.add_argument("--harness", help="lm-eval tasks to run too, comma-separated (e.g. "
                                          "hellaswag,arc_easy; they download their data)")
    parser.add_argument("--limit", type=int, help="items per lm-eval task")
    parser.add_argument("--device", help="where the models run (default: the fastest this "
                                         "machine has: CUDA, then Apple's MPS, then the CPU)")


def _stages(args: argparse.Namespace):
    from llmcourse.device import pick_device
    from llmcourse.dpo.preferences import load_preferences
    from llmcourse.evaluation.questions import CHAT, PLAIN_TEXT
    from llmcourse.evaluation.report import Stage, course_stages
    from llmcourse.finetune.template import CHAT_TOKENS
    from llmcourse.training.run_folder import load_run

    if args.checkpoint in (*STAGES, "all"):
        stages, pairs = course_stages()
        if args.checkpoint != "all":
            stages = [s for s in stages if s.name == STAGES[args.checkpoint]]
    else:
        folder = Path(args.checkpoint)
        if not (folder / "checkpoint.pt").exists():
            raise SystemExit(f"error: {folder} is neither a run folder (no checkpoint.pt) nor one "
                             f"of course, sft, dpo, all")
        model, tokenizer = load_run(folder)
        chat = all(t in tokenizer.special_tokens for t in CHAT_TOKENS)
        stages = [Stage(folder.name, model, tokenizer, CHAT if chat else PLAIN_TEXT)]
        pairs = load_preferences(args.pairs) if args.pairs else []
    prompting = {"chat": CHAT, "plain": PLAIN_TEXT}.get(args.prompt)
    device = pick_device(args.device)
    stages = [Stage(s.name, s.model.to(device), s.tokenizer, prompting or s.prompting)
              for s in stages]
    return stages, pairs


def eval_command(args: argparse.Namespace) -> int:
    from llmcourse.evaluation.report import bigram_stage, report_card
    from llmcourse.evaluation.suite import course_suite

    if args.audit and args.checkpoint not in (*STAGES, "all"):
        raise SystemExit("error: --audit checks the course's own training data against its "
                         "evaluation sets: give a course stage (course, sft, dpo, all), not a "
                         "run of other data")
    stages, pairs = _stages(args)
    first = stages[0]
    floor = bigram_stage(first.tokenizer, first.model.cfg.context_length)
    floor.model.to(next(first.model.parameters()).device)
    suite = course_suite(pairs, items=args.items)
    report = report_card(stages, suite, floors=[floor])
    print(f"on {next(first.model.parameters()).device}")
    print(report.table())
    results = {"report_card": report.rows()}
    if args.audit:
        from llmcourse.evaluation.audit import (
            audit,
            audit_table,
            course_evaluations,
            course_sources,
        )

        rows = audit(course_sources(), course_evaluations(suite))
        print("\ncontamination audit: items of each evaluation set found in each training source")
        print(audit_table(rows))
        results["audit"] = [dataclasses.asdict(row) for row in rows]
    if args.harness:
        from llmcourse.evaluation.harness import CourseLM, evaluate

        tasks = [t.strip() for t in args.harness.split(",") if t.strip()]
        for stage in stages:
            found = evaluate(CourseLM(stage.model, stage.tokenizer), tasks, limit=args.limit)
            results[f"lm-eval: {stage.name}"] = found["results"]
            for task, metrics in found["results"].items():
                shown = ", ".join(f"{k.split(',')[0]} {v:.4f}" for k, v in metrics.items()
                                  if isinstance(v, float) and "stderr" not in k)
                print(f"{stage.name} on {task}: {shown}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
