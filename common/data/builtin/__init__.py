"""Built-in data with no download: the stdlib code and docs corpora, templated math problems, math prompts."""
