"""Data stage: clips tables, label schemes, database adapters, manifests and image reading.

It only reads; the synthetic generator that writes databases is `microexpr.synth`."""
