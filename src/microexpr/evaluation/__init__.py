"""Evaluation stage: protocols, metrics, the fold runner and result directories."""
