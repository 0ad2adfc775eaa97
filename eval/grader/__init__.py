"""The one math answer grader: extraction, normalization, sympy equivalence, LaTeX parsing, qwen-compat rules, a time-limited pool."""
