"""The one training loop and what it needs: objectives, LR schedules, checkpoints, metrics log, FLOPs, CPU threads."""
