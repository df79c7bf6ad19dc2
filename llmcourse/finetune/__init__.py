"""Fine-tuning the pretrained model: instruction data, prompt templates and collation with a masked
loss, supervised fine-tuning with the Part III trainer, and LoRA."""
