"""The chat template and the grown vocabulary."""
import pytest
import torch

from llmcourse.finetune.records import chat
from llmcourse.finetune.template import CHAT_TOKENS, END, add_chat_tokens, grow_vocabulary, render
from llmcourse.model.config import get_preset
from llmcourse.model.gpt import GPT
from llmcourse.tokenizer import Tokenizer, load_tokenizer, save_tokenizer

TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 20


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.train(TEXT, 300, special_tokens=["<|endoftext|>"])


def test_the_chat_tokens_come_after_every_old_id(tokenizer, tmp_path):
    grown = add_chat_tokens(tokenizer)
    assert [grown.special_tokens[t] for t in CHAT_TOKENS] == list(range(300, 304))
    assert grown.special_tokens["<|endoftext|>"] == tokenizer.special_tokens["<|endoftext|>"]
    assert grown.encode(TEXT) == tokenizer.encode(TEXT) and add_chat_tokens(grown) is grown
    save_tokenizer(grown, tmp_path / "tok.json")
    assert load_tokenizer(tmp_path / "tok.json").special_tokens == grown.special_tokens


def test_a_conversation_renders_to_the_template(tokenizer):
    tok = add_chat_tokens(tokenizer)
    conversation, = chat([{"messages": [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Say <|end|> now."},
                                        {"role": "assistant", "content": "to be"}]}])
    prompt, response = render(conversation, tok)
    assert tok.decode(prompt) == ("<|system|>\nBe brief.<|end|>\n"
                                  "<|user|>\nSay <|end|> now.<|end|>\n<|assistant|>\n")
    assert tok.decode(response) == "to be<|end|>" and response[-1] == tok.special_tokens[END]
    # the user's typed "<|end|>" is text, not the token: only the template's three ends are special
    assert prompt.count(tok.special_tokens[END]) == 2


@pytest.mark.parametrize("tie", [True, False])
def test_a_grown_model_predicts_what_it_did(tie):
    torch.manual_seed(0)
    cfg = get_preset("tiny", n_layer=2, vocab_size=300, context_length=32, tie_embeddings=tie)
    model = GPT(cfg).eval()
    ids = torch.randint(0, 300, (2, 16))
    before = model(ids)
    grow_vocabulary(model, 304)
    after = model(ids)
    assert after.shape == (2, 16, 304) and model.cfg.vocab_size == 304
    torch.testing.assert_close(after[..., :300], before, rtol=0, atol=1e-6)
    # every new row is the mean of the old rows, so each new logit is the mean of the old logits
    torch.testing.assert_close(after[..., 300:], before.mean(-1, keepdim=True).expand(2, 16, 4),
                               rtol=1e-4, atol=1e-5)
    assert (model.lm_head.weight is model.tok_emb.weight) == tie
    model(torch.tensor([[301, 5, 303]]))  # the new ids are valid input
    with pytest.raises(ValueError, match="cannot shrink"):
        grow_vocabulary(model, 200)
