"""Chapters 4 and 5, attention and the GPT: the model config and its presets, attention,
embeddings and positions, the GPT itself, generation with a KV cache, the minimal training loop
that chapter 5 runs before Part III's trainer, sizing (parameters, memory, FLOPs), Hugging Face
checkpoints and the weight layout for fast CPU decoding."""
