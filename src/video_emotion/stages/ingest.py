"""Stage `ingest`: bring a corpus into data/raw and write the manifest (see `data.corpus`)."""

from __future__ import annotations

from video_emotion.data.corpus import CorpusError  # noqa: F401  (tests call run())
from video_emotion.data.corpus import ingest as run
from video_emotion.stages.runner import Context, Stage, param_path

STAGE = Stage("ingest", "Generate or collect the corpus and write the clip manifest (stage `ingest`).",
              reads={"corpora": param_path("corpora")},
              writes={"raw_dir": param_path("raw_dir"), "manifest": param_path("manifest")})


def body(ctx: Context) -> None:
    splits = ctx.encrypted_splits
    run(ctx.params.ingest, ctx.path("raw_dir"), ctx.path("manifest"), splits, ctx.ring_if(bool(splits)),
        corpora=ctx.path("corpora"))


def main(argv: list[str] | None = None) -> int:
    return STAGE.main(body, argv)


if __name__ == "__main__":
    raise SystemExit(main())
