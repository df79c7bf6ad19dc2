"""The course's model as a language model of lm-evaluation-harness (`lm-eval`, the `[eval]`
extra), and the course's tasks written as harness tasks.

The harness asks a model three things: `loglikelihood` (context, continuation) pairs,
`loglikelihood_rolling` whole texts, and `generate_until` a stop string. `CourseLM` answers them
with this package's functions, so every task the harness knows (HellaSwag, ARC, MMLU, GSM8K, ...)
runs on our model, and our own measurements can be checked against the harness's on the same
task. Its tasks are YAML files; `write_tasks` writes the course's as YAML over local JSON Lines,
which the harness runs offline.

    lm = CourseLM(model, tokenizer)
    results = evaluate(lm, ["course_order", "course_text"], include_path=write_tasks(suite, dir))
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from torch import nn

from llmcourse.evaluation.generation import generate_until
from llmcourse.evaluation.likelihood import continuation_logprobs, encode_pair, text_logprob
from llmcourse.evaluation.questions import plain_text
from llmcourse.evaluation.suite import CLOZE_DELIMITER, ORDER_DELIMITER, Suite
from llmcourse.tokenizer import END_OF_TEXT, Tokenizer


class CourseLM(LM):
    """An llmcourse model and tokenizer, answering the harness's requests in batches."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, batch_size: int = 32,
                 max_gen_toks: int = 24) -> None:
        super().__init__()
        self.model, self.tokenizer = model.eval(), tokenizer
        self.batch_size, self.max_gen_toks = batch_size, max_gen_toks
        self.prefix_id = tokenizer.special_tokens[END_OF_TEXT]

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        pairs = [encode_pair(self.tokenizer, *r.args, prefix_id=self.prefix_id)
                 for r in requests]
        return continuation_logprobs(self.model, pairs, self.batch_size)

    def loglikelihood_rolling(self, requests) -> list[float]:
        return [text_logprob(self.model, self.tokenizer.encode_ordinary(r.args[0]),
                             self.prefix_id, batch_size=self.batch_size) for r in requests]

    def generate_until(self, requests) -> list[str]:
        """Greedy answers, as HFLM gives them: a context that leaves no room for the new tokens
        loses its oldest tokens. Where a task asks for more new tokens than the whole window
        (GSM8K's 256 on a model of 64), HFLM stops with an error; here the answer is capped to
        the window, less one token of context, so the task still gets a score."""
        window = self.model.cfg.context_length
        out = []
        for r in requests:
            context, options = r.args
            if options.get("do_sample"):
                raise ValueError("CourseLM decodes greedily; the task asked for sampling")
            until = options.get("until") or []
            stop = [until] if isinstance(until, str) else list(until)
            new_tokens = min(options.get("max_gen_toks", self.max_gen_toks), window - 1)
            prompt = self.tokenizer.encode_ordinary(context) or [self.prefix_id]
            out.append(generate_until(self.model, self.tokenizer, prompt,
                                      stop=[*stop, END_OF_TEXT], stop_id=self.prefix_id,
                                      max_new_tokens=new_tokens))
        return out


def evaluate(lm: LM, tasks: Sequence[str], include_path: str | Path | None = None,
             limit: int | None = None, num_fewshot: int | None = None,
             log_samples: bool = False) -> dict[str, Any]:
    """lm-eval's `simple_evaluate` on `tasks`, quietly: its logging and progress bars are held
    back, so a notebook shows the results alone."""
    import datasets
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(include_path) if include_path else None)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    # datasets draws its bars as notebook widgets, which no redirection of stderr catches
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return lm_eval.simple_evaluate(model=lm, tasks=list(tasks), task_manager=manager,
                                           limit=limit, num_fewshot=num_fewshot,
                                           log_samples=log_samples, bootstrap_iters=0)
    finally:
        if shown:
            datasets.enable_progress_bars()


def _task_yaml(name: str, data: Path, output_type: str, *lines: str) -> str:
    """A harness task over one local JSON Lines file, its test split; `lines` say the rest."""
    return "\n".join([f"task: {name}", "dataset_path: json", "dataset_kwargs:", "  data_files:",
                      f"    test: {json.dumps(str(data))}", f"output_type: {output_type}",
                      "test_split: test", *lines, ""])


def write_tasks(suite: Suite, folder: str | Path) -> Path:
    """The suite as harness tasks in `folder` (returned, for `include_path`): course_order and
    course_cloze (multiple choice), course_text (bits per byte, rolling) and course_questions
    (exact match, the plain-text prompt, greedy until a newline)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def jsonl(name: str, records: list[dict]) -> Path:
        path = (folder / f"{name}.jsonl").resolve()
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        return path

    for name, items, delimiter in (("course_order", suite.order, ORDER_DELIMITER),
                                   ("course_cloze", suite.cloze, CLOZE_DELIMITER)):
        data = jsonl(name, [{"context": i.context, "choices": list(i.choices), "gold": i.gold}
                            for i in items])
        (folder / f"{name}.yaml").write_text(_task_yaml(
            name, data, "multiple_choice", 'doc_to_text: "{{context}}"',
            'doc_to_choice: "{{choices}}"', 'doc_to_target: "{{gold}}"',
            f"target_delimiter: {json.dumps(delimiter)}", "metric_list:", "  - metric: acc",
            "  - metric: acc_norm"))
    data = jsonl("course_text", [{"text": t} for t in suite.texts])
    (folder / "course_text.yaml").write_text(_task_yaml(
        "course_text", data, "loglikelihood_rolling", 'doc_to_text: ""',
        'doc_to_target: "{{text}}"', "metric_list:", "  - metric: word_perplexity",
        "  - metric: byte_perplexity", "  - metric: bits_per_byte"))
    data = jsonl("course_questions", [
        {"question": plain_text(q.prompt_messages), "answer": q.answer, "task": q.task}
        for q in suite.questions])
    (folder / "course_questions.yaml").write_text(_task_yaml(
        "course_questions", data, "generate_until", 'doc_to_text: "{{question}}"',
        'doc_to_target: "{{answer}}"', "generation_kwargs:", '  until: ["\\n"]',
        "  do_sample: false", "  max_gen_toks: 24", "metric_list:", "  - metric: exact_match",
        "    regexes_to_ignore: ['^\\s+', '\\s+$']"))
    return folder


def hub_gpt2(name: str = "openai-community/gpt2") -> tuple[nn.Module, Tokenizer]:
    """A GPT-2 checkpoint from the Hugging Face hub (online only), in llmcourse's model, with
    OpenAI's GPT-2 tokenizer."""
    from huggingface_hub import snapshot_download

    from llmcourse.model.hf_checkpoint import load_hf_checkpoint
    from llmcourse.tokenizer import load_gpt2

    folder = snapshot_download(name, allow_patterns=["config.json", "model.safetensors"])
    model = load_hf_checkpoint(folder)
    if model.cfg.vocab_size != 50257:
        raise ValueError(f"{name} has {model.cfg.vocab_size} tokens, not GPT-2's 50,257: its "
                         f"tokenizer is not GPT-2's")
    return model.eval(), load_gpt2()
