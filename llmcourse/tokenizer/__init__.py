"""Byte-level BPE from scratch: pre-tokenization, training, encoding (whole or streamed) and
decoding, files, and GPT-2's vocabulary. `naive` holds the textbook algorithm the fast code is
tested against."""
from llmcourse.tokenizer.bpe import END_OF_TEXT, Tokenizer, merge_chunk
from llmcourse.tokenizer.files import TokenizerFileError, load_gpt2, load_tokenizer, save_tokenizer
from llmcourse.tokenizer.pretokenize import GPT2_PATTERN, split
from llmcourse.tokenizer.training import merge_pair, train_bpe

__all__ = ["END_OF_TEXT", "GPT2_PATTERN", "Tokenizer", "TokenizerFileError", "load_gpt2",
           "load_tokenizer", "merge_chunk", "merge_pair", "save_tokenizer", "split", "train_bpe"]
