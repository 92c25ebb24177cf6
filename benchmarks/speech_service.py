"""What speech recognition costs inside the analysis and the service, with it on (`auto`) and off.

    .venv/bin/python benchmarks/speech_service.py [--bundle models/video_emotion] [--runs 5] [--skip-service]

1. Face-only clips without speech, analysed in this process with `transcribe="auto"` and `"off"`
   (interleaved runs, medians): the real 19.7 s footage (its track holds crying and laughing, no
   words), a 10 s real face (posed photo) with a silent track, and the same without a track.
2. A real `bentoml serve` on 127.0.0.1: latency of a 10 s real-face clip with ~8 s of espeak-ng English
   speech and of the silent clip, each with `transcribe=auto` and `off`, at concurrency 1 and 4.

Prints Markdown tables and writes .bench/speech_service.json. Needs `make assets` (Whisper, real
footage) and Debian's espeak-ng.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".bench"
sys.path.insert(0, str(ROOT))
REAL = ROOT / "data" / "external" / "real_faces"
WHISPER = ROOT / "models" / "pretrained" / "whisper-base"
SPEECH = ("I love this wonderful day, everything is great and I am so happy. "
          "But yesterday was terrible, everything was awful and I was so sad.")


def log(msg: str) -> None:
    print(f"[speech-service] {msg}", file=sys.stderr, flush=True)


def load_avg() -> float:
    return round(os.getloadavg()[0], 1)


def make_clips(work: Path) -> dict[str, Path]:
    from tests.speech_media import face_with_voice, silence_wav, speak

    photo = REAL / "posed_happy.jpg"
    return {
        "speech": face_with_voice(photo, speak(SPEECH, work / "speech.wav", lead_s=1.0), work / "speech.mp4",
                                  seconds=12.0),
        "silent": face_with_voice(photo, silence_wav(work / "quiet.wav", 10.0), work / "silent.mp4", seconds=10.0),
        "no_audio": face_with_voice(photo, None, work / "no_audio.mp4", seconds=10.0),
        "real_19.7s": REAL / "cry_then_laugh.mp4",
    }


def fer_bundle(work: Path) -> Path:
    """The FER-initialised bundle the tests serve (used when no trained bundle is given)."""
    from video_emotion.config import ModelConfig, PreprocessConfig
    from video_emotion.features.faces import save_face_models
    from video_emotion.labels import LABELS
    from video_emotion.modeling.model import build_model

    folder = work / "bundle"
    folder.mkdir()
    build_model(ModelConfig(lstm_units=8, correction_bound=0.0), 8, 64,
                ROOT / "models" / "pretrained" / "fer2013_mini_xception.hdf5").save(folder / "model.keras")
    (folder / "preprocessing.json").write_text(json.dumps(
        {"labels": list(LABELS), "n_frames": 8, "image_size": 64, "detector": "blazeface", "face_margin": 0.12,
         "min_face_frac": 0.2, "detect_every": 1, "denoise": False, "equalize": False, "window_s": 1.0}))
    save_face_models(PreprocessConfig(), ROOT / "models" / "pretrained", folder)  # the bundle's face detector
    return folder


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg): robust to other load on the machine."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def in_process(bundle_dir: Path, clips: dict[str, Path], runs: int) -> dict:
    from video_emotion.inference.analyze import analyze_video
    from video_emotion.inference.bundle import load_bundle
    from video_emotion.text.speech import get_transcriber

    bundle = load_bundle(str(bundle_dir), None)
    transcriber = get_transcriber(WHISPER)
    out = {}
    for name in ("real_19.7s", "silent", "no_audio"):
        times: dict[str, list[float]] = {"off": [], "auto": []}
        cpu: dict[str, list[float]] = {"off": [], "auto": []}
        status = None
        analyze_video(clips[name], bundle, transcribe="off")  # warm-up (graph, decoder)
        for _ in range(runs):
            for mode in ("off", "auto"):
                t0, c0 = time.perf_counter(), cpu_seconds()
                res = analyze_video(clips[name], bundle, transcribe=mode, speech_model=transcriber)
                times[mode].append(time.perf_counter() - t0)
                cpu[mode].append(cpu_seconds() - c0)
                if mode == "auto":
                    status = res["speech"]["status"]
                    assert "transcript" not in res, f"{name}: words invented: {res['transcript']}"
        off, auto = statistics.median(times["off"]), statistics.median(times["auto"])
        cpu_off, cpu_auto = statistics.median(cpu["off"]), statistics.median(cpu["auto"])
        out[name] = {"off_s": round(off, 3), "auto_s": round(auto, 3), "overhead": round(auto / off - 1, 4),
                     "cpu_off_s": round(cpu_off, 3), "cpu_auto_s": round(cpu_auto, 3),
                     "cpu_overhead": round(cpu_auto / cpu_off - 1, 4),
                     "status": status, "runs": runs, "whisper_loaded": transcriber.loaded, "load_avg": load_avg()}
        log(f"{name}: off {off:.2f} s, auto {auto:.2f} s ({100 * (auto / off - 1):+.1f}%); CPU {cpu_off:.2f} / "
            f"{cpu_auto:.2f} s ({100 * (cpu_auto / cpu_off - 1):+.1f}%), {status}")
    return out


def service(bundle_dir: Path, clips: dict[str, Path], levels: dict[int, int]) -> dict:
    import requests

    home = Path(tempfile.mkdtemp(prefix="bentoml-", dir=BENCH))
    env = {**os.environ, "BENTOML_HOME": str(home), "VIDEO_EMOTION_API_KEYS": "bench-key",
           "VIDEO_EMOTION_API_KEY_FILE": str(home / "no-keys"), "VIDEO_EMOTION_WHISPER_DIR": str(WHISPER),
           "VIDEO_EMOTION_RATE_LIMIT": "0"}  # one key times every request: no per-key limit
    with common.bentoml_service(bundle_dir, env, BENCH / "speech_service_serve.log", timeout_s=300) as (_, url):
        info = requests.get(f"{url}/model", headers={"Authorization": "Bearer bench-key"}, timeout=10).json()
        assert info["speech_recognition"]["available"], info

        def one(clip: Path, mode: str) -> tuple[float, int, str]:
            t0 = time.perf_counter()
            r = requests.post(f"{url}/analyze", files={"video": (clip.name, clip.read_bytes())},
                              data={"transcribe": mode}, headers={"Authorization": "Bearer bench-key"}, timeout=600)
            status = r.json().get("speech", {}).get("status", "?") if r.status_code == 200 else str(r.status_code)
            return time.perf_counter() - t0, r.status_code, status

        warm = one(clips["speech"], "auto")  # warm-up
        if warm[1] != 200:
            raise RuntimeError(f"the service answered {warm[1]}; see {BENCH / 'speech_service_serve.log'}")
        out = {}
        for name in ("speech", "silent"):
            for conc, n in levels.items():
                for mode in ("off", "auto"):
                    t0 = time.perf_counter()
                    with cf.ThreadPoolExecutor(conc) as pool:
                        results = list(pool.map(lambda _, clip=clips[name], how=mode: one(clip, how), range(n)))
                    wall = time.perf_counter() - t0
                    lat = sorted(r[0] for r in results)
                    row = {"clip": name, "transcribe": mode, "concurrency": conc, "requests": n,
                           "errors": sum(r[1] != 200 for r in results), "speech_status": results[-1][2],
                           "p50_s": round(statistics.median(lat), 3),
                           "p95_s": round(common.p95(lat), 3),
                           "throughput_rps": round(n / wall, 3), "load_avg": load_avg()}
                    out[f"{name}/{mode}/c{conc}"] = row
                    log(str(row))
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default=None, help="model bundle folder (default: a FER-initialised bundle)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-service", action="store_true")
    ap.add_argument("--skip-in-process", action="store_true")
    args = ap.parse_args()
    BENCH.mkdir(exist_ok=True)
    out: dict = {"cpus": len(os.sched_getaffinity(0)), "load_avg_start": load_avg()}
    with tempfile.TemporaryDirectory(dir=BENCH) as tmp:
        work = Path(tmp)
        clips = make_clips(work)
        bundle = Path(args.bundle) if args.bundle else fer_bundle(work)
        out["bundle"] = str(args.bundle or "FER-initialised (as in the tests)")
        out["in_process"] = {} if args.skip_in_process else in_process(bundle, clips, args.runs)
        if not args.skip_service:
            out["service"] = service(bundle, clips, {1: 5, 4: 8})
    out["load_avg_end"] = load_avg()
    (BENCH / "speech_service.json").write_text(json.dumps(out, indent=2) + "\n")
    print("| face-only clip, no speech | wall off (s) | wall auto (s) | wall auto vs off | CPU off (s) | CPU auto (s) "
          "| CPU auto vs off | speech status |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in out["in_process"].items():
        print(f"| {name} | {r['off_s']:.2f} | {r['auto_s']:.2f} | {100 * r['overhead']:+.1f}% | {r['cpu_off_s']:.2f} | "
              f"{r['cpu_auto_s']:.2f} | {100 * r['cpu_overhead']:+.1f}% | {r['status']} |")
    if "service" in out:
        print()
        print("| clip | transcribe | concurrency | requests | errors | p50 (s) | p95 (s) | req/s | speech |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in out["service"].values():
            print(f"| {r['clip']} | {r['transcribe']} | {r['concurrency']} | {r['requests']} | {r['errors']} | "
                  f"{r['p50_s']:.2f} | {r['p95_s']:.2f} | {r['throughput_rps']:.2f} | {r['speech_status']} |")
    print(f"\nload average (1 min) at start {out['load_avg_start']}, at end {out['load_avg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
