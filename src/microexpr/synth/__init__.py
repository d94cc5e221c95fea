"""Synthetic micro-expression database written in the CASME II layout (cropped or raw release).

Licensed databases cannot be shipped, so the toolkit makes its own default data::

    from microexpr.synth import synthesize
    root = synthesize("data/synthetic")            # 12 subjects x 3 classes x 4 clips

writes::

    <root>/Cropped/sub01/EP07_01/reg_img31.jpg ...  frames, RGB JPEG, numbered like CASME II
    <root>/CASME2-coding-20190701.xlsx              Subject, Filename, OnsetFrame, ApexFrame,
                                                    OffsetFrame, Action Units, Estimated Emotion
    <root>/microexpr_synthetic.json                 config, generator version, per-subject
                                                    landmarks and per-clip ground truth

which the CASME II adapter reads like a real release.

With ``full_frame=True`` it writes whole camera frames instead, like the raw release::

    root = synthesize("data/synthetic-raw", full_frame=True)

    <root>/CASME2_RAW_selected/sub01/EP07_01/img31.jpg ...  640x480 (`frame_size`) frames
    <root>/CASME2-coding-20190701.xlsx                     the same table
    <root>/microexpr_synthetic.json                        also, per clip, the face box and the
                                                           landmarks in frame pixels at onset

The face (hairline to below the chin) is then about `face_scale` of the frame height (each
subject 0.85-1.15 times that), rendered at that size, placed off centre in front of a
defocused background (a photograph shipped with scikit-image or a plain wall), jittered per
clip and moving slowly by up to `head_motion` px over the clip; soft ellipses around the head
(hair included) and a fading neck blend it in, so no square edge shows. The clips are otherwise
the cropped mode's clips: same subjects, timing, action units, intensity and drift (in units of
the face; `size` is not used), so the same config gives the same xlsx in both modes. See
`microexpr.synth.frame`.

How the data is made: every subject is a seeded variation (geometry, shape, colour, lighting,
noise) of a real face photograph that ships with scikit-image. Every clip is a neutral stretch,
an expression of 150-500 ms with a raised-cosine onset -> apex -> offset, and a neutral tail,
at `fps`. The class is carried only by a subtle local motion (peak `amplitude` px at 128 px) in
the regions of the emotion's action units; head drift, sensor noise and brightness flicker are
added independently of the class. The same config gives the same frames and annotations.

Modules:

- `generator`: `SynthConfig`, `synthesize` and the writing of frames, annotation sheet and
  metadata (re-exported here).
- `face`: the base face (a real photograph shipped with scikit-image), its hand-placed
  landmarks and the per-subject appearance (geometry, shape warp, colour, lighting, noise).
- `aus`: the action-unit displacement library and the emotion -> action-unit table.
- `clip`: one clip: timeline, intensity profile, head drift, flicker, noise and rendering.
- `frame`: whole camera frames (``full_frame=True``): background, placement, head motion.
- `macro`: large-amplitude apex images for macro -> micro pretraining.
- `long_video`: `synthesize_long`, long videos in the CAS(ME)^2 layout with micro- and
  macro-expressions among blinks, talking and head turns, for spotting.

The generator is its own stage, above `microexpr.data`: it writes a database that the data
adapters then read like a real release; `microexpr.data` never imports it.
"""

from microexpr.synth.generator import (
    ANNOTATION_FILE,
    GENERATOR_VERSION,
    METADATA_FILE,
    SUPPORTED_EMOTIONS,
    SynthConfig,
    synthesize,
)
from microexpr.synth.long_video import LongSynthConfig, synthesize_long

__all__ = [
    "ANNOTATION_FILE",
    "GENERATOR_VERSION",
    "METADATA_FILE",
    "SUPPORTED_EMOTIONS",
    "LongSynthConfig",
    "SynthConfig",
    "synthesize",
    "synthesize_long",
]
