"""The shared training stages: continued pretraining (cpt, its data preparation and CLI) and plain SFT."""
