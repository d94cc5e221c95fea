"""Internals of the synthetic micro-expression generator; the public entry is
`microexpr.data.synthetic` (`SynthConfig`, `synthesize`).

- `face`: the base face (a real photograph shipped with scikit-image), its hand-placed
  landmarks and the per-subject appearance (geometry, shape warp, colour, lighting, noise).
- `aus`: the action-unit displacement library and the emotion -> action-unit table.
- `clip`: one clip: timeline, intensity profile, head drift, flicker, noise and rendering.
"""
