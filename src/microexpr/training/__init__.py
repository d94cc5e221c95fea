"""Training stage: the one training loop for torch models, seeding and device choice."""
