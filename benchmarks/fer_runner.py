"""Runs the `fer` package's Video.analyze on one clip inside the benchmark's own environment.

fer calls cv2.waitKey and cv2.destroyAllWindows even with display=False; headless OpenCV lacks
them, so both are stubbed. Prints one JSON line: wall seconds of the analysis and frames analysed.
"""

import json
import os
import resource
import sys
import tempfile
import time

import cv2

cv2.waitKey = lambda *a, **k: -1
cv2.destroyAllWindows = lambda *a, **k: None

from fer.classes import Video  # noqa: E402  (fer 25.10 no longer re-exports these)
from fer.fer import FER  # noqa: E402


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries the parent's high-water mark
    into a child across exec, and the benchmark that starts this runner has decoded whole clips."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


path, frequency = sys.argv[1], int(sys.argv[2])
detector = FER(mtcnn=False)  # Haar detection + the quantised TFLite model (the package default)
with tempfile.TemporaryDirectory() as out:
    os.chdir(out)  # fer writes its outputs next to the working directory
    video = Video(path, outdir=out)
    t0 = time.perf_counter()
    rows = video.analyze(detector, display=False, frequency=frequency, save_frames=False, save_video=False,
                         annotate_frames=False, zip_images=False, batch_size=8, use_async_io=False, output="csv")
    seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "frames": len(rows),
                  "peak_rss_mb": peak_rss_mb()}))
