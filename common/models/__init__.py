"""Models: loading (HF folders, hub names, GGUF), the tiny default, the one SamplingConfig, generation backends."""
