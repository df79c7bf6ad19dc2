"""The course's command line: `python -m llmcourse COMMAND` (or `llmcourse COMMAND`).

    train [--preset course] [--steps N | --tokens N | --minutes M] [--out DIR] [--resume]   pretrain a model
    generate RUN_DIR [--prompt TEXT] [--temperature T] [--top-k K] [--top-p P]               sample from it
    chat RUN_DIR [--system TEXT] [--temperature T]                  chat with a fine-tuned run's model
    eval CHECKPOINT [--json PATH] [--harness TASKS]                 the report card of a model
    grade NOTEBOOK.ipynb [...] [--json PATH] [--gradescope PATH]   score learner notebooks
    exercises [--check]                                             regenerate exercises/ from solutions/
    corpus fetch NAME | corpus list                                 fetch (and cache) or list the corpora
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _grade(args: argparse.Namespace) -> int:
    from llmcourse.grading.grader import (GradingError, format_table, grade_notebook, read_notebook,
                                          report_gradescope, report_json, write_json_atomically)

    paths = [Path(p) for p in args.notebooks]
    try:
        for path in paths:  # every notebook must be gradable before anything runs or is written
            read_notebook(path)
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    grades = [grade_notebook(p, cell_timeout=args.cell_timeout, exercise_timeout=args.exercise_timeout)
              for p in paths]
    for grade in grades:
        print(format_table(grade))
    if args.json:
        write_json_atomically(Path(args.json), report_json(grades))
    if args.gradescope:
        write_json_atomically(Path(args.gradescope), report_gradescope(grades))
    return 0


def _exercises(args: argparse.Namespace) -> int:
    from llmcourse.grading.generate import generate

    stale = generate(Path(args.solutions), Path(args.exercises), check_only=args.check)
    for line in stale:
        print(line)
    if args.check and stale:
        print("run `python -m llmcourse exercises` to regenerate exercises/ from solutions/", file=sys.stderr)
        return 1
    return 0


def _corpus(args: argparse.Namespace) -> int:
    from llmcourse.corpus import available_corpora, load_corpus
    from llmcourse.download import DownloadError

    if args.action == "list":
        for name, description in available_corpora().items():
            print(f"{name:<20} {description}")
        return 0
    try:
        corpus = load_corpus(args.name)
    except (ValueError, DownloadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{corpus.name}: {len(corpus.documents)} documents, {len(corpus):,} characters")
    return 0


class _Parser(argparse.ArgumentParser):
    """Bad arguments get one line that names the problem (and where to find the usage), not a usage dump."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _train(args: argparse.Namespace) -> int:
    from llmcourse.training.command import train_command

    return train_command(args)


def _generate(args: argparse.Namespace) -> int:
    from llmcourse.training.command import generate_command

    return generate_command(args)


def _chat(args: argparse.Namespace) -> int:
    from llmcourse.finetune.chat import chat_command

    return chat_command(args)


def _eval(args: argparse.Namespace) -> int:
    from llmcourse.evaluation.command import eval_command

    return eval_command(args)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="llmcourse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    from llmcourse.training.command import add_generate_arguments, add_train_arguments

    train = commands.add_parser("train", help="pretrain a model on a corpus (checkpoints, metrics, --resume)")
    add_train_arguments(train)
    train.set_defaults(run=_train)

    generate = commands.add_parser("generate", help="sample text from a run's checkpoint, streaming")
    add_generate_arguments(generate)
    generate.set_defaults(run=_generate)

    from llmcourse.finetune.chat import add_chat_arguments

    chat = commands.add_parser("chat", help="chat with a fine-tuned run's model, streaming")
    add_chat_arguments(chat)
    chat.set_defaults(run=_chat)

    from llmcourse.evaluation.command import add_eval_arguments

    evaluate = commands.add_parser("eval", help="the report card of a model: every measure, with "
                                                "intervals and floors")
    add_eval_arguments(evaluate)
    evaluate.set_defaults(run=_eval)

    grade = commands.add_parser("grade", help="score learner notebooks")
    grade.add_argument("notebooks", nargs="+")
    grade.add_argument("--json", help="write the report here (score, max_score, each exercise)")
    grade.add_argument("--gradescope", help="write a Gradescope results.json here")
    grade.add_argument("--cell-timeout", type=float, default=120, help="seconds per notebook cell (default 120)")
    grade.add_argument("--exercise-timeout", type=float, default=30, help="seconds per exercise (default 30)")
    grade.set_defaults(run=_grade)

    exercises = commands.add_parser("exercises", help="regenerate exercises/ from solutions/")
    exercises.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    exercises.add_argument("--solutions", default="solutions")
    exercises.add_argument("--exercises", default="exercises")
    exercises.set_defaults(run=_exercises)

    corpus = commands.add_parser("corpus", help="fetch or list corpora")
    corpus.add_argument("action", choices=["fetch", "list"])
    corpus.add_argument("name", nargs="?", default="shakespeare")
    corpus.set_defaults(run=_corpus)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
