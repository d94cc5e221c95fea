"""Data stage: clips tables, label schemes, database adapters, manifests, synthetic data."""
