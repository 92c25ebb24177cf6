"""Data validation with Great Expectations 1.x: suites over a manifest and a JSON + HTML report.

Three batches are checked: the clips themselves (schema, labels, ranges, unique checksums), one row
per actor (every actor in exactly one split: no identity leaks into the test set) and one row per
(label, split) pair (enough clips of every class in every split).
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from video_emotion.config import ValidateConfig
from video_emotion.data.manifest import SPLITS, read_manifest
from video_emotion.io_utils import atomic_path, write_json
from video_emotion.labels import LABELS

log = logging.getLogger("video_emotion.validate")

REQUIRED = ["path", "label", "actor", "split", "duration_s", "fps", "width", "height", "n_frames",
            "has_audio", "sha256"]


def _suites(cfg: ValidateConfig) -> dict[str, list[Any]]:
    import great_expectations.expectations as gxe

    clips = [gxe.ExpectTableColumnsToMatchSet(column_set=REQUIRED, exact_match=False)]
    clips += [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ("path", "label", "actor", "split", "sha256")]
    clips += [
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=list(LABELS)),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToBeBetween(column="duration_s", min_value=cfg.min_duration_s,
                                          max_value=cfg.max_duration_s),
        gxe.ExpectColumnValuesToBeBetween(column="fps", min_value=1, max_value=240),
        gxe.ExpectColumnValuesToBeBetween(column="width", min_value=cfg.min_side_px, max_value=cfg.max_side_px),
        gxe.ExpectColumnValuesToBeBetween(column="height", min_value=cfg.min_side_px, max_value=cfg.max_side_px),
        gxe.ExpectColumnValuesToBeBetween(column="n_frames", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="has_audio", value_set=[True, False]),
        gxe.ExpectColumnValuesToMatchRegex(column="sha256", regex=r"^[0-9a-f]{64}$"),
        gxe.ExpectColumnValuesToBeUnique(column="sha256"),
        gxe.ExpectColumnValuesToBeUnique(column="path"),
    ]
    actors = [gxe.ExpectColumnValuesToBeBetween(column="n_splits", min_value=1, max_value=1,
                                                meta={"check": "actor-disjoint splits"})]
    counts = [gxe.ExpectColumnValuesToBeBetween(column="clips", min_value=cfg.min_clips_per_label_split,
                                                meta={"check": "minimum clips per label and split"})]
    return {"clips": clips, "actors": actors, "label_split": counts}


def _derived(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per-actor and per-(label, split) tables, where the manifest has the columns for them."""
    out: dict[str, pd.DataFrame] = {}
    if {"actor", "split"} <= set(df.columns):
        g = df.groupby("actor")["split"]
        out["actors"] = pd.DataFrame({"actor": g.nunique().index, "n_splits": g.nunique().values,
                                      "splits": g.agg(lambda s: ",".join(sorted(set(map(str, s))))).values})
    if {"label", "split"} <= set(df.columns):
        idx = pd.MultiIndex.from_product([LABELS, SPLITS], names=["label", "split"])
        counts = df.groupby(["label", "split"]).size().reindex(idx, fill_value=0)
        out["label_split"] = counts.rename("clips").reset_index()
        out["label_split"]["pair"] = out["label_split"]["label"] + "/" + out["label_split"]["split"]
    return out


def _explain(batch: str, frame: pd.DataFrame, res: Any) -> dict[str, Any]:
    cfg = res.expectation_config
    kwargs = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    r = res.result or {}
    examples = r.get("partial_unexpected_list") or []
    column = kwargs.get("column")
    # Name the offending rows in terms a person can act on (the actor, the clip, the pair).
    where: list[str] = []
    if not res.success and column and column in frame.columns and examples:
        key = {"actors": "actor", "label_split": "pair"}.get(batch, "path")
        if key in frame.columns:
            where = [str(v) for v in frame.loc[frame[column].isin(examples), key].head(5)]
    if cfg.type == "expect_column_values_to_be_unique" and not res.success and column in frame.columns \
            and "path" in frame.columns:
        where = [str(v) for v in frame.loc[frame[column].duplicated(keep=False), "path"].head(5)]
    if not res.success and cfg.type == "expect_table_columns_to_match_set":
        missing = sorted(set(REQUIRED) - set(frame.columns))
        examples = missing
    return {
        "batch": batch, "expectation": cfg.type, "column": column, "success": bool(res.success),
        "check": (cfg.meta or {}).get("check", ""),
        "kwargs": {k: v for k, v in kwargs.items() if k != "column"},
        "unexpected_count": r.get("unexpected_count"),
        "unexpected_examples": [str(v) for v in examples[:10]],
        "rows": where,
    }


def check_manifest(cfg: ValidateConfig, manifest_path: Path, report_dir: Path) -> dict[str, Any]:
    """Run the suites on the manifest and write the report (JSON + HTML); return the summary."""
    import great_expectations as gx

    df = read_manifest(manifest_path)
    frames = {"clips": df, **_derived(df)}
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("video_emotion")
    results: list[dict[str, Any]] = []
    for name, expectations in _suites(cfg).items():
        if name not in frames:
            results.append({"batch": name, "expectation": "derived table", "column": None, "success": False,
                            "check": "manifest lacks the columns to build this table", "kwargs": {},
                            "unexpected_count": None, "unexpected_examples": [], "rows": []})
            continue
        asset = source.add_dataframe_asset(name=name)
        batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{name}_suite", expectations=expectations))
        vd = context.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_check", data=batch_def,
                                                                        suite=suite))
        outcome = vd.run(batch_parameters={"dataframe": frames[name]}, result_format="SUMMARY")
        results += [_explain(name, frames[name], r) for r in outcome.results]
    failed = [r for r in results if not r["success"]]
    summary = {"manifest": str(manifest_path), "rows": int(len(df)), "expectations": len(results),
               "failed": len(failed), "success": not failed, "results": results}
    _write_report(report_dir, summary)
    return summary


def one_line(f: dict[str, Any]) -> str:
    parts = [f"{f['expectation']}", f"[{f['batch']}]"]
    if f["column"]:
        parts.append(f"column={f['column']}")
    if f["check"]:
        parts.append(f"({f['check']})")
    if f["unexpected_examples"]:
        parts.append(f"unexpected={f['unexpected_examples'][:5]}")
    if f["rows"]:
        parts.append(f"rows={f['rows'][:5]}")
    return " ".join(parts)


def _write_report(report_dir: Path, summary: dict[str, Any]) -> None:
    rows = "".join(
        f"<tr class={'ok' if r['success'] else 'fail'}><td>{'PASS' if r['success'] else 'FAIL'}</td>"
        f"<td>{html.escape(r['batch'])}</td><td>{html.escape(r['expectation'])}</td>"
        f"<td>{html.escape(str(r['column'] or ''))}</td><td>{html.escape(r['check'])}</td>"
        f"<td>{html.escape(json.dumps(r['kwargs'], default=str))}</td>"
        f"<td>{html.escape(', '.join(r['unexpected_examples']))}</td><td>{html.escape(', '.join(r['rows']))}</td></tr>"
        for r in summary["results"])
    page = f"""<!doctype html><meta charset="utf-8"><title>Data validation</title>
<style>body{{font-family:sans-serif}} td,th{{border:1px solid #ccc;padding:4px}} .fail{{background:#fdd}}
.ok{{background:#efe}}</style>
<h1>Data validation: {'PASSED' if summary['success'] else 'FAILED'}</h1>
<p>{html.escape(summary['manifest'])}: {summary['rows']} clips, {summary['expectations']} expectations,
{summary['failed']} failed.</p>
<table><tr><th>result</th><th>batch</th><th>expectation</th><th>column</th><th>check</th><th>arguments</th>
<th>unexpected values</th><th>rows</th></tr>{rows}</table>"""
    with atomic_path(report_dir) as tmp:
        tmp.mkdir(parents=True)
        write_json(tmp / "report.json", summary)
        (tmp / "report.html").write_text(page, encoding="utf-8")
