"""Preprocessing stage: frames, optical flow and strain, the on-disk cache."""
