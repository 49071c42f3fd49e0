"""overfeat-edge: OverFeat-style fully convolutional detectors on the edge.

The data's way: source -> preprocess -> pyramid -> backend -> decode -> merge -> sink
(``stream.sources``, ``pipeline``, ``runtime``, ``stream.sinks``). The edge runtime imports no torch.
"""

import os
import sys

__version__ = "0.1.0"

# Frames and images over this many pixels are refused (skipped and counted), before OpenCV decodes
# them: a header may claim 60000 x 60000. Set before anything imports cv2 (it reads it once).
MAX_PIXELS = 64 * 1024 * 1024
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

# OpenCV's and FFmpeg's own log lines ("[ WARN:0@1.2] global cap.cpp...", "[tcp @ 0x...] Connection
# refused") would surround our one-line errors, which say the same in words: OpenCV logs errors only,
# and FFmpeg nothing (AV_LOG_QUIET; OpenCV reads OPENCV_FFMPEG_LOGLEVEL when it first opens a video).
# Set before cv2 loads; a user's own setting wins (OPENCV_LOG_LEVEL=INFO to see them again).
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
if "cv2" in sys.modules:  # imported before us: its level is already read
    _cv2 = sys.modules["cv2"]
    _cv2.utils.logging.setLogLevel(_cv2.utils.logging.LOG_LEVEL_ERROR)
