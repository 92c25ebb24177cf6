"""Runs video-emotion's analyze_video on one clip (model loaded and warmed up before timing)."""

import json
import resource
import sys
import time
from pathlib import Path

from video_emotion.inference.analyze import ModelBundle, analyze_video


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries the parent's high-water mark
    into a child across exec, and the benchmark that starts this runner has decoded whole clips."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


bundle_dir, path, rate = sys.argv[1], sys.argv[2], sys.argv[3]
fast = not (len(sys.argv) > 4 and sys.argv[4] == "full")  # "full": detector on every frame, no tracking
bundle = ModelBundle.load(Path(bundle_dir))
bundle.warm_up()  # as in the service: the model is loaded (and a Keras one traced) before timing
sample_fps = None if rate == "default" else float(rate)
t0 = time.perf_counter()
res = analyze_video(path, bundle, sample_fps=sample_fps, fast=fast, transcribe="off")  # faces only, as fer
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "frames": res["frames_analysed"], "runtime": bundle.runtime,
                  "segments": len(res["timeline"]),
                  "dominant": res["summary"]["dominant_emotion"],
                  "timeline": [s["emotion"] for s in res["timeline"]],
                  "sentiments": [s["sentiment"] for s in res["timeline"]],
                  "peak_rss_mb": peak_rss_mb()}))
