"""The benchmark registry and one module per benchmark, each owning its loader, prompts, gold rule and decontamination text."""
