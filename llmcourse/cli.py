"""The course's command line: `python -m llmcourse COMMAND` (or `llmcourse COMMAND`).

    train [--preset course] [--steps N | --tokens N | --minutes M] [--out DIR] [--resume]
        pretrain a model
    generate RUN_DIR [--prompt TEXT] [--temperature T] [--top-k K] [--top-p P]
        sample from it
    sft --from RUN --data FILE.jsonl [--lora R] [--steps N] [--out DIR] [--resume]
        fine-tune it on conversations
    dpo --from SFT_RUN --pairs FILE.jsonl [--beta B] [--steps N] [--out DIR] [--resume]
        align a fine-tuned run on preference pairs
    chat RUN_DIR [--system TEXT] [--temperature T]
        chat with a fine-tuned run's model
    eval CHECKPOINT [--json PATH] [--harness TASKS]
        the report card of a model
    grade NOTEBOOK.ipynb|FOLDER [...] [--json PATH] [--csv PATH]
        score learner notebooks, sandboxed
    autograder CHAPTER OUT_DIR
        Gradescope's setup.sh and run_autograder
    exercises [--check]
        regenerate exercises/ from solutions/
    corpus fetch NAME | corpus list
        fetch (and cache) or list the corpora
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _notebooks(paths: list[str]) -> list[Path]:
    """The notebooks named, a folder standing for the notebooks in it (a class's submissions), in
    name order."""
    out: list[Path] = []
    for p in map(Path, paths):
        out += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    return out


def _grade(args: argparse.Namespace) -> int:
    from llmcourse.grading.grader import (
        GradingError,
        format_table,
        grade_notebook,
        read_notebook,
        report_csv,
        report_gradescope,
        report_json,
        use_sandbox,
        write_json_atomically,
    )
    from llmcourse.grading.sandbox import SandboxError, sandbox_problem

    paths = _notebooks(args.notebooks)
    if not paths:
        print("error: no notebooks to grade", file=sys.stderr)
        return 2
    try:
        for path in paths:  # every notebook must be gradable before anything runs or is written
            read_notebook(path)
        mode = "off" if args.no_sandbox else "on" if args.require_sandbox else "auto"
        sandbox = use_sandbox(mode)
    except (GradingError, SandboxError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not sandbox and not args.no_sandbox:
        print(f"grading without a sandbox: {sandbox_problem()} "
              f"(--require-sandbox makes this an error)", file=sys.stderr)
    grades = []
    for path in paths:  # one after another, each in its own kernel, sandbox and scratch folder
        grades.append(grade_notebook(path, cell_timeout=args.cell_timeout,
                                     exercise_timeout=args.exercise_timeout, sandbox=sandbox))
        print(format_table(grades[-1]), flush=True)
    if args.json:
        write_json_atomically(Path(args.json), report_json(grades))
    if args.gradescope:
        write_json_atomically(Path(args.gradescope), report_gradescope(grades))
    if args.csv:
        report_csv(Path(args.csv), grades)
    return 0


def _autograder(args: argparse.Namespace) -> int:
    from llmcourse.grading.autograder import write_autograder

    for path in write_autograder(args.chapter, Path(args.out)):
        print(path)
    return 0


def _exercises(args: argparse.Namespace) -> int:
    from llmcourse.grading.generate import generate

    stale = generate(Path(args.solutions), Path(args.exercises), check_only=args.check)
    for line in stale:
        print(line)
    if args.check and stale:
        print("run `python -m llmcourse exercises` to regenerate exercises/ from solutions/",
              file=sys.stderr)
        return 1
    return 0


def _corpus(args: argparse.Namespace) -> int:
    from llmcourse.data.corpus import available_corpora, load_corpus
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
    """Bad arguments get one line that names the problem (and where to find the usage), not a usage
    dump."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="llmcourse", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    # each command's module gives its arguments and its function
    from llmcourse.dpo.command import add_dpo_arguments, dpo_command
    from llmcourse.evaluation.command import add_eval_arguments, eval_command
    from llmcourse.finetune.chat import add_chat_arguments, chat_command
    from llmcourse.finetune.command import add_sft_arguments, sft_command
    from llmcourse.training.command import (
        add_generate_arguments,
        add_train_arguments,
        generate_command,
        train_command,
    )

    # the model's commands, in the book's order: (name, help, its arguments, what it runs)
    for name, about, add_arguments, command in (
        ("train", "pretrain a model on a corpus (checkpoints, metrics, --resume)",
         add_train_arguments, train_command),
        ("generate", "sample text from a run's checkpoint, streaming", add_generate_arguments,
         generate_command),
        ("sft", "fine-tune a run's model on conversations (JSON Lines), fully or with --lora",
         add_sft_arguments, sft_command),
        ("dpo", "align a fine-tuned run on preference pairs (JSON Lines)", add_dpo_arguments,
         dpo_command),
        ("chat", "chat with a fine-tuned run's model, streaming", add_chat_arguments,
         chat_command),
        ("eval", "the report card of a model: every measure, with intervals and floors",
         add_eval_arguments, eval_command),
    ):
        parser_of_command = commands.add_parser(name, help=about)
        add_arguments(parser_of_command)
        parser_of_command.set_defaults(run=command)

    grade = commands.add_parser("grade",
                                help="score learner notebooks (a folder: every notebook in it)")
    grade.add_argument("notebooks", nargs="+",
                       help="notebooks, or folders of them (a class's submissions)")
    grade.add_argument("--json", help="write the report here (score, max_score, each exercise)")
    grade.add_argument("--gradescope", help="write a Gradescope results.json here")
    grade.add_argument("--cell-timeout", type=float, default=120,
                       help="seconds per notebook cell (default 120)")
    grade.add_argument("--exercise-timeout", type=float, default=30,
                       help="seconds per exercise (default 30)")
    grade.add_argument("--csv", help="write one row per notebook here (the class's summary table)")
    sandboxing = grade.add_mutually_exclusive_group()
    sandboxing.add_argument("--require-sandbox", action="store_true",
                            help="refuse to grade where the sandbox cannot run "
                                 "(default: say so, and grade)")
    sandboxing.add_argument("--no-sandbox", action="store_true",
                            help="run learner code unsandboxed "
                                 "(for debugging a notebook you trust)")
    grade.set_defaults(run=_grade)

    autograder = commands.add_parser("autograder",
                                     help="write Gradescope's autograder files for a chapter")
    autograder.add_argument("chapter", type=int)
    autograder.add_argument("out", help="the folder to write setup.sh and run_autograder into")
    autograder.set_defaults(run=_autograder)

    exercises = commands.add_parser("exercises", help="regenerate exercises/ from solutions/")
    exercises.add_argument("--check", action="store_true",
                           help="only report whether exercises/ is up to date")
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
