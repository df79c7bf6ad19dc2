"""Fine-tuning through the Part III trainer: batches of examples instead of windows, exact resume,
and a model that learns to answer and stop."""
import copy

import pytest
import torch

from llmcourse.finetune.records import alpaca
from llmcourse.finetune.sft import (
    InstructionBatches,
    encode_conversations,
    exact_match,
    replies,
    reply,
)
from llmcourse.finetune.template import add_chat_tokens, grow_vocabulary
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.tokenizer import Tokenizer
from llmcourse.training import Trainer, get_train_preset

TEXT = "the king is dead, long live the queen; all her court is in the hall. " * 40
CONVERSATIONS = alpaca([
    {"instruction": "Reverse the words.", "input": "king queen", "output": "queen king",
     "task": "reverse"},
    {"instruction": "Say the word twice.", "input": "hall", "output": "hall hall", "task": "twice"},
])


def setup(seed: int = 0):
    base = Tokenizer.train(TEXT, 300)
    tokenizer = add_chat_tokens(base)
    torch.manual_seed(seed)
    model = GPT(get_preset("tiny", n_layer=2, vocab_size=base.n_vocab, context_length=32))
    grow_vocabulary(model, tokenizer.n_vocab)
    return model, tokenizer


def test_batches_are_drawn_like_windows():
    model, tokenizer = setup()
    examples = encode_conversations(CONVERSATIONS * 4, tokenizer, 32)
    source = InstructionBatches(examples, pad_id=0)
    a = source.sample(6, torch.Generator().manual_seed(3))
    b = source.sample(6, torch.Generator().manual_seed(3))
    assert torch.equal(a.ids, b.ids) and a.ids.shape[0] == 6
    half = source.sample(6, torch.Generator().manual_seed(3), rows=slice(3, 6))
    assert torch.equal(half.ids[:, : a.ids.shape[1]], a.ids[3:, : half.ids.shape[1]])


def test_the_trainer_fine_tunes_and_resumes_exactly(tmp_path):
    model, tokenizer = setup()
    data = InstructionBatches(encode_conversations(CONVERSATIONS, tokenizer, 32), pad_id=0)
    cfg = get_train_preset("smoke", batch_size=4, context_length=32, max_steps=8, eval_every=4,
                           precision="fp32")
    whole = Trainer(copy.deepcopy(model), data, data, cfg, progress=False)
    history = whole.fit()
    first = Trainer(copy.deepcopy(model), data, data, cfg, out_dir=tmp_path, progress=False)
    first.fit(stop_after=4)
    resumed = Trainer(copy.deepcopy(model), data, data, cfg, out_dir=tmp_path, resume=True,
                      progress=False)
    strip = lambda h: [{k: v for k, v in m.items() if k != "tokens_per_s"} for m in h]  # noqa: E731
    assert strip(resumed.fit()) == strip(history)
    pairs = zip(resumed.model.parameters(), whole.model.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)


def test_a_fine_tuned_model_answers_and_stops():
    model, tokenizer = setup()
    data = InstructionBatches(encode_conversations(CONVERSATIONS, tokenizer, 32), pad_id=0)
    before = exact_match(model, tokenizer, CONVERSATIONS)
    cfg = get_train_preset("smoke", batch_size=4, context_length=32, max_steps=150, lr=3e-3,
                           warmup_steps=10, eval_every=0, precision="fp32")
    Trainer(model, data, None, cfg, progress=False).fit()
    assert before == {"reverse": (0, 1), "twice": (0, 1)}
    assert exact_match(model, tokenizer, CONVERSATIONS) == {"reverse": (1, 1), "twice": (1, 1)}
    # it stopped at its <|end|>: the reply is the answer alone, with nothing after it
    asked = [("user", "Reverse the words.\n\nking queen")]
    assert reply(model, tokenizer, asked, 20) == "queen king"


def test_the_majority_baseline_guesses_the_commonest_training_answer():
    from llmcourse.finetune.sft import majority_baseline

    def asked(answer, task="act"):
        record = {"instruction": "Which act?", "input": "a line", "output": answer, "task": task}
        return alpaca([record])[0]

    train = [asked("I"), asked("I"), asked("III"), asked("4", "count")]
    test = [asked("I"), asked("II"), asked("I"), asked("4", "count"), asked("5", "count")]
    assert majority_baseline(train, test) == {"act": (2, 3), "count": (1, 2)}


def test_the_recipe_lifts_the_course_model_on_held_out_questions():
    """The chapter's recipe on a short budget (400 steps, two families): on questions with held-out
    phrasings and inputs, the fine-tuned course model clearly beats both its former self and the
    majority baseline (measured 22/40 and 33/40 against 0 and 6)."""
    from llmcourse.data.corpus import load_corpus
    from llmcourse.finetune import recipe
    from llmcourse.finetune.sft import majority_baseline
    from llmcourse.finetune.tasks import make_tasks, vocabulary
    from llmcourse.training.course_model import course_model

    words = vocabulary(load_corpus("shakespeare").text)
    tasks = make_tasks(words, 1000, 40, ["first_word", "count_words"])
    course = course_model(progress=False)
    tokenizer, model = recipe.chat_model(course.tokenizer, course.model)
    before = exact_match(model, tokenizer, tasks.test)
    data = InstructionBatches(encode_conversations(tasks.train, tokenizer, 64), pad_id=0)
    Trainer(model, data, None, recipe.sft_config(max_steps=400), progress=False).fit()
    after = exact_match(model, tokenizer, tasks.test)
    baseline = majority_baseline(tasks.train, tasks.test)
    for family in ("first_word", "count_words"):
        assert before[family][0] == 0
        assert after[family][0] >= baseline[family][0] + 10, (family, after, baseline)
    # the pretrained model is left as it was
    assert course.tokenizer.n_vocab + 4 == tokenizer.n_vocab
    assert course.model.tok_emb.weight.shape[0] == course.tokenizer.n_vocab
    # exact_match answers many questions in batches: each reply is the one it gets alone
    alone = [reply(model, tokenizer, [(m.role, m.content) for m in c.prompt_messages])
             for c in tasks.test]
    assert replies(model, tokenizer, tasks.test) == alone


def test_accumulation_weighs_every_answer_token_alike():
    """Masked losses: each micro-batch's loss is a mean over its own answer tokens, so averaging
    the micro-batches' means weighs a token of a short answer more than one of a long answer.
    Two micro-batches of 4 rows must equal one batch of 8, in the loss and in the gradient, with
    answers of 1 and 12 words. (The gradient is read from AdamW's first moment after one step,
    0.1 times the gradient: the weights themselves are no witness, as AdamW's first step moves
    every weight by about the learning rate whatever its gradient's size.)"""
    model, tokenizer = setup()
    long_answer = "the king is dead long live the queen and all her court"
    rows = alpaca([{"instruction": "Say yes.", "input": "", "output": "yes"},
                   {"instruction": "Say it.", "input": "", "output": long_answer}])
    data = InstructionBatches(encode_conversations(rows, tokenizer, 32), pad_id=0)
    # the reference: the mean cross-entropy over every answer token of the 8 rows, by hand
    cfg = get_train_preset("smoke", context_length=32, max_steps=1, warmup_steps=0, lr=1e-2,
                           precision="fp32")
    picked = data.sample(8, torch.Generator().manual_seed(cfg.seed))
    counts = (picked.targets != -100).sum(-1)
    assert counts[:4].sum() != counts[4:].sum()  # the two micro-batches hold unequal answers
    logits = model(picked.ids, mask=picked.mask, positions=picked.positions)
    by_hand = torch.nn.functional.cross_entropy(logits.flatten(0, 1), picked.targets.flatten(),
                                                ignore_index=-100, reduction="sum") / counts.sum()
    gradients = {}
    for batch_size, accum in ((8, 1), (4, 2)):
        trainer = Trainer(copy.deepcopy(model), data, None,
                          cfg.replace(batch_size=batch_size, grad_accum=accum), progress=False)
        loss = trainer.train_step()["loss"]
        assert loss == pytest.approx(by_hand.item(), rel=1e-6), (batch_size, accum)
        state = trainer.optimizer.state
        gradients[accum] = [state[p]["exp_avg"] / 0.1 for p in trainer.model.parameters()]
    for ours, one_batch in zip(gradients[2], gradients[1], strict=True):
        torch.testing.assert_close(ours, one_batch, atol=1e-6, rtol=1e-4)
