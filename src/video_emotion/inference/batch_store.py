"""The output folder of a batch job: a Parquet table with one row per video and the full results.

```
OUT/job.json                      the model (name, version) and analysis options the rows were made with
OUT/summary/part-000001.parquet   one row per video: path, sha256, duration, model version, dominant
                                  emotion, sentiment, score, distribution, tags, the voice's emotion,
                                  status, error, ...
OUT/timelines/part-000001.jsonl   one line per analysed video: {"path", "sha256", "result": <the JSON of `analyze`>}
```

`OUT/summary` is one Parquet dataset (`pandas.read_parquet(OUT / "summary")`). Rows are buffered and
written as numbered parts, each atomically (a temporary sibling renamed into place), timelines before
their summary: a part's summary is the commit mark, so a job killed half-way leaves whole parts only
and loses at most the rows of the part it was filling. Each path appears in at most one row.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from video_emotion.io_utils import atomic_path, write_json

JOB_KEYS = ("model_name", "model_version", "sample_fps", "lang", "transcribe", "voice")
LATER_JOB_KEYS = frozenset({"voice"})  # not in the job.json of folders made before them: not compared there
_PART = re.compile(r"^part-(\d{6})\.(parquet|jsonl)$")

SCHEMA = pa.schema([
    ("path", pa.string()), ("sha256", pa.string()), ("size_bytes", pa.int64()), ("mtime", pa.float64()),
    ("status", pa.string()),  # ok | error (the file cannot be analysed) | lost (workers died; retried next run)
    ("error", pa.string()),
    ("duration_s", pa.float64()), ("fps", pa.float64()), ("frames_analysed", pa.int64()),
    ("faces_detected", pa.bool_()),
    ("ends_early", pa.bool_()),  # the stream decodes to much less than its header states (timelines: the durations)
    ("model_name", pa.string()), ("model_version", pa.string()),
    ("dominant_emotion", pa.string()), ("sentiment", pa.string()), ("sentiment_score", pa.float64()),
    ("voice_emotion", pa.string()),  # the voice's dominant emotion (null: no voice read, or a part from before)
    ("distribution", pa.map_(pa.string(), pa.float64())), ("tags", pa.list_(pa.string())),
    ("engine", pa.string()), ("seconds", pa.float64()),
    ("node", pa.string()),  # the Ray node id that analysed it, `local` for the local engine
    ("host", pa.string()),  # that node's host name
    ("finished_at", pa.float64()),  # Unix time the row was made (when the video's analysis ended)
])


class BatchStoreError(ValueError):
    """An output folder that holds another job's results (one clear line)."""


def summary_row(path: str, sha256: str | None, size: int, mtime: float, result: dict[str, Any] | None,
                error: str | None, engine: str, seconds: float, status: str | None = None,
                node: str | None = None, host: str | None = None) -> dict[str, Any]:
    """One summary-table row from an analysis result (or from the error that prevented one)."""
    row: dict[str, Any] = {k: None for k in SCHEMA.names}
    row.update(path=path, sha256=sha256, size_bytes=int(size), mtime=float(mtime), engine=engine, node=node, host=host,
               seconds=round(float(seconds), 3), error=error, status=status or ("error" if error else "ok"),
               finished_at=round(time.time(), 3))
    if result is not None:
        s = result["summary"]
        row.update(duration_s=result["duration_s"], fps=result["fps"], frames_analysed=result["frames_analysed"],
                   faces_detected=result["faces_detected"], ends_early=bool(result.get("ends_early")),
                   model_name=result["model"]["name"],
                   model_version=str(result["model"]["version"]), dominant_emotion=s["dominant_emotion"],
                   sentiment=s["sentiment"], sentiment_score=s["sentiment_score"],
                   distribution={k: float(v) for k, v in s["distribution"].items()}, tags=list(s["tags"]),
                   voice_emotion=(result.get("voice") or {}).get("summary", {}).get("dominant_emotion"))
    return row


class BatchStore:
    """Durable, resumable output of one batch job (see the module docstring)."""

    def __init__(self, out: str | Path, job: dict[str, Any], rows_per_part: int = 200, flush_s: float = 30.0) -> None:
        self.out = Path(out)
        self.summary_dir, self.timeline_dir = self.out / "summary", self.out / "timelines"
        self.rows_per_part, self.flush_s = rows_per_part, flush_s
        self._rows: list[dict[str, Any]] = []
        self._lines: list[str] = []
        self._last_flush = time.monotonic()
        self._check_job(job)
        self.summary_dir.mkdir(parents=True, exist_ok=True)
        self.timeline_dir.mkdir(parents=True, exist_ok=True)
        self._drop_orphans()
        self._next = max(self._parts(), default=0) + 1

    def _check_job(self, job: dict[str, Any]) -> None:
        path = self.out / "job.json"
        want = {k: job.get(k) for k in JOB_KEYS}
        if path.is_file():
            have = json.loads(path.read_text(encoding="utf-8"))
            diff = [f"{k}: {have.get(k)!r} there, {want[k]!r} now" for k in JOB_KEYS
                    if have.get(k) != want[k] and (k in have or k not in LATER_JOB_KEYS)]
            if diff:
                raise BatchStoreError(f"{self.out} holds results made with other settings ({'; '.join(diff)}); "
                                      "use another --out folder")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(path, want)

    def _parts(self) -> list[int]:
        return sorted(int(m.group(1)) for f in self.summary_dir.iterdir() if (m := _PART.match(f.name)))

    def _drop_orphans(self) -> None:
        """Timelines whose summary part never landed (a job killed between the two renames) are redone."""
        committed = set(self._parts())
        for f in self.timeline_dir.iterdir():
            m = _PART.match(f.name)
            if m and int(m.group(1)) not in committed:
                f.unlink()

    def rows(self) -> list[dict[str, Any]]:
        """Every committed summary row (one per path)."""
        files = [self.summary_dir / f"part-{n:06d}.parquet" for n in self._parts()]
        return [r for f in files for r in pq.read_table(f).to_pylist()]

    def index(self) -> dict[str, dict[str, Any]]:
        return {r["path"]: r for r in self.rows()}

    def drop(self, paths: set[str]) -> None:
        """Remove the rows (and timelines) of `paths`, rewriting only the parts that hold them."""
        if not paths:
            return
        for n in self._parts():
            part = self.summary_dir / f"part-{n:06d}.parquet"
            table = pq.read_table(part)
            keep = [p not in paths for p in table.column("path").to_pylist()]
            if all(keep):
                continue
            tl = self.timeline_dir / f"part-{n:06d}.jsonl"
            if tl.is_file():
                lines = [ln for ln in tl.read_text(encoding="utf-8").splitlines()
                         if ln and json.loads(ln)["path"] not in paths]
                with atomic_path(tl) as tmp:
                    tmp.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
            if any(keep):
                with atomic_path(part) as tmp:
                    pq.write_table(table.filter(pa.array(keep)), tmp)
            else:
                part.unlink()
                tl.unlink(missing_ok=True)

    def add(self, row: dict[str, Any], result_json: str | None) -> None:
        self._rows.append(row)
        if result_json is not None:
            self._lines.append(json.dumps({"path": row["path"], "sha256": row["sha256"]}, ensure_ascii=False)[:-1]
                               + ', "result": ' + result_json + "}")
        if len(self._rows) >= self.rows_per_part or time.monotonic() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._rows:
            return
        n = self._next
        with atomic_path(self.timeline_dir / f"part-{n:06d}.jsonl") as tmp:
            tmp.write_text("".join(ln + "\n" for ln in self._lines), encoding="utf-8")
        with atomic_path(self.summary_dir / f"part-{n:06d}.parquet") as tmp:
            rows = [{**r, "distribution": list(r["distribution"].items()) if r["distribution"] else None}
                    for r in self._rows]
            pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
        self._next += 1
        self._rows, self._lines = [], []


def read_summary(out: str | Path):
    """The summary table as a pandas DataFrame (distribution as a dict per row)."""
    import pandas as pd

    parts = sorted((Path(out) / "summary").glob("part-*.parquet"))
    if not parts:
        return pd.DataFrame(columns=SCHEMA.names)
    # Parts written before a column existed (node, host, ends_early, voice_emotion) read as nulls in it.
    df = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default").to_pandas()
    df["distribution"] = [dict(d) if d is not None else None for d in df["distribution"]]
    return df


def read_results(out: str | Path) -> dict[str, dict[str, Any]]:
    """path -> the full analysis result, for every analysed video."""
    results = {}
    for f in sorted((Path(out) / "timelines").glob("part-*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line:
                rec = json.loads(line)
                results[rec["path"]] = rec["result"]
    return results
