"""Training data: sources, mixing, tokenization, packing, FIM, chat/SFT rendering, decontamination;
builtin/ holds the corpora that exist on every machine."""
