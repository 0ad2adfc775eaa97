"""The Coder recipe: multi-stage SFT with execution-checked data, and its held-out evaluation."""
