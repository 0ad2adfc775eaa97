"""pipelines.yaml: planning, fingerprints, stage registry and results, done markers, the runner, launchers, the report."""
