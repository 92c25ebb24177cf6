"""Stage `validate`: a Great Expectations suite over the manifest; bad data stops the pipeline.

On failure the stage exits non-zero, prints every failed expectation with example values, and leaves
a JSON + HTML report (see `data.validation` for what is checked).

To check a copy of a manifest by hand:
    python -m video_emotion.stages.validate --manifest copy.csv --report /tmp/report
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from video_emotion.config import ValidateConfig
from video_emotion.data.validation import check_manifest, one_line
from video_emotion.stages.runner import Context, Stage, StageError, param_path

log = logging.getLogger("video_emotion.validate")

STAGE = Stage("validate", __doc__.split("\n\n")[0] + " To check a copy of a manifest, pass --manifest COPY.csv "
              "--report DIR; the exit code is 1 and the failed expectations are printed if it is bad.",
              reads={"manifest": param_path("manifest")}, writes={"report": param_path("validation_report")})


def run(cfg: ValidateConfig, manifest_path: Path, report_dir: Path) -> dict[str, Any]:
    """Validate the manifest; write the report; return the summary (raises StageError on failure)."""
    summary = check_manifest(cfg, manifest_path, report_dir)
    failed = [r for r in summary["results"] if not r["success"]]
    if failed:
        for f in failed:
            log.error("expectation failed: %s", one_line(f))
        raise StageError(f"{len(failed)} of {summary['expectations']} expectations failed on {manifest_path}; "
                         f"report: {Path(report_dir) / 'report.html'}")
    log.info("all %d expectations passed on %d clips", summary["expectations"], summary["rows"])
    return summary


def body(ctx: Context) -> None:
    run(ctx.params.validate, ctx.path("manifest"), ctx.path("report"))


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
