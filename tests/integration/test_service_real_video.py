"""The service reads a browser-recorded WebM (no duration in its header) as the CLI does: frames counted
and timed from the decoded stream."""

from __future__ import annotations

import pytest
import requests

from tests.integration.conftest import GOOD
from tests.unit.test_real_video import FPS, N, _face_frames, _ffmpeg, _raw_in

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {GOOD}"}


def _grid_points(duration: float, rate: float) -> int:
    return sum(1 for g in range(int(duration * rate) + 2) if (g + 0.5) / rate < duration)


def test_service_counts_and_times_a_browser_webm_from_the_stream(service):
    webm = _ffmpeg([*_raw_in(FPS), "-c:v", "libvpx", "-b:v", "1M", "-f", "webm", "-"], _face_frames(N))
    prep = requests.get(f"{service['url']}/model", headers=AUTH, timeout=10).json()["preprocessing"]
    model_rate = prep["n_frames"] / prep["window_s"]
    for sample_fps in (None, FPS):
        data = {"sample_fps": str(sample_fps)} if sample_fps else {}
        r = requests.post(f"{service['url']}/analyze", files={"video": ("browser.webm", webm, "video/webm")},
                          data=data, headers=AUTH, timeout=120)
        assert r.status_code == 200, r.text
        res = r.json()
        assert abs(res["duration_s"] - N / FPS) < 0.1 and abs(res["fps"] - FPS) < 0.5
        asked = sample_fps or model_rate  # at most the video's rate; above the model's, a multiple of it
        rate = min(asked if asked <= model_rate * 1.001 else model_rate * max(1, round(asked / model_rate)), FPS)
        assert res["frames_analysed"] == _grid_points(res["duration_s"], rate)
