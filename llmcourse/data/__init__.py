"""Chapters 2 and 3, from text to training windows: corpora (fetched, verified and cached),
cleaning and a split by document, near-duplicate removal, quality filtering, and token shards on
disk cut into (input, target) windows. The tokenizer has its own folder, `llmcourse.tokenizer`."""
