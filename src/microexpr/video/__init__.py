"""Video analysis: stream a video, follow and align the face per stable stretch, score its
motion, spot micro-expression intervals and (with a trained model) recognise them.

`analyze(video)` returns a `VideoAnalysis` (tables of intervals and frames, a timeline plot,
`to_dir`). Spotters (`get_spotter`, `list_spotters`) are small objects with a config; the
default is the training-free ``mdmd`` (main directional maximal difference of optical flow).
"""

from microexpr.video.analysis import VIDEO_ALIGN, RingBuffer, VideoAnalysis, analyze
from microexpr.video.reader import VideoInfo, VideoSource, open_video
from microexpr.video.spotters import (
    LBPConfig,
    LBPSpotter,
    MDMDConfig,
    MDMDSpotter,
    SpotConfig,
    Spotter,
    Spotting,
    get_spotter,
    list_spotters,
)
from microexpr.video.tracker import FaceTracker, TrackConfig

__all__ = [
    "VIDEO_ALIGN", "FaceTracker", "LBPConfig", "LBPSpotter", "MDMDConfig", "MDMDSpotter",
    "RingBuffer", "SpotConfig", "Spotter", "Spotting", "TrackConfig", "VideoAnalysis",
    "VideoInfo", "VideoSource", "analyze", "get_spotter", "list_spotters", "open_video",
]
