import pytest

from llmcourse.model.config import PRESETS, ModelConfig, get_preset


def test_presets_are_valid_and_named():
    assert {"gpt2", "gpt2-medium", "llama-1.2b", "llama-7b", "tiny"} <= PRESETS.keys()
    assert get_preset("llama-1.2b").context_length == 4096
    assert get_preset("llama-1.2b").kv_heads == 8


def test_overrides_replace_fields_and_keep_the_preset():
    small = get_preset("gpt2", n_layer=2)
    assert small.n_layer == 2 and small.d_model == 768
    assert get_preset("gpt2").n_layer == 12


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        get_preset("gpt5")
    for name in PRESETS:
        assert name in str(err.value)


@pytest.mark.parametrize("fields, message", [
    (dict(d_model=100, n_head=12), "not divisible by n_head"),
    (dict(n_head=12, n_kv_head=5), "not divisible by n_kv_head"),
    (dict(n_layer=0), "n_layer must be a positive int"),
    (dict(norm="batchnorm"), "norm must be one of"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_configs_say_what_is_wrong(fields, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**fields)
