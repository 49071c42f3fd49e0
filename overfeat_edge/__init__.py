"""overfeat-edge: OverFeat-style fully convolutional detectors on the edge.

The data's way: source -> preprocess -> pyramid -> backend -> decode -> merge -> sink
(``stream.sources``, ``pipeline``, ``runtime``, ``stream.sinks``). The edge runtime imports no torch.
"""

import os

__version__ = "0.1.0"

# Frames and images over this many pixels are refused (skipped and counted), before OpenCV decodes
# them: a header may claim 60000 x 60000. Set before anything imports cv2 (it reads it once).
MAX_PIXELS = 64 * 1024 * 1024
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
# FFmpeg's own lines ("moov atom not found") off: a truncated video gets our one line, not theirs too
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # and OpenCV's "[ WARN ] ... Failed to write frame" per frame
