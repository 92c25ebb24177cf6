"""A video library: the videos (and audio files) a batch job reads, from a folder, a glob, a list file or a URL.

INPUT is a folder (searched recursively for video and audio files), a glob (`clips/**/*.mp4`), a text list
(one path or URL per line, `#` starts a comment) or a CSV with a `path` column (relative entries are
relative to the list's folder), or a single video. Any of these may be an fsspec URL
(`s3://bucket/videos/`) when the filesystem's package is installed; such videos are copied to a
private temporary file while they are read, since the decoder reads local files.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from video_emotion.features.audio import AUDIO_SUFFIXES
from video_emotion.features.video import VIDEO_SUFFIXES

LIST_SUFFIXES = frozenset({".txt", ".lst", ".list", ".csv"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES  # videos, and sound files (a voice memo, a call, a podcast)


class LibraryError(ValueError):
    """An INPUT that names nothing readable (one clear line)."""


@dataclass(frozen=True)
class Source:
    """One video of the library: where it is, and the size and modification time seen when listed."""

    path: str         # an absolute local path, or a URL
    size: int = -1    # bytes; -1 when it could not be read (the video then gets an error row)
    mtime: float = 0.0

    @property
    def name(self) -> str:
        return PurePosixPath(self.path.split("://", 1)[-1]).name


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _fs(spec: str):
    """(filesystem, path inside it) for a local path or an fsspec URL."""
    import fsspec

    if spec.startswith("file://"):
        spec = spec[len("file://"):]
    if not is_url(spec):
        return fsspec.filesystem("file"), os.path.abspath(os.path.expanduser(spec))
    try:
        return fsspec.core.url_to_fs(spec)
    except (ImportError, ValueError) as exc:
        raise LibraryError(f"{spec}: no filesystem for this URL ({exc}); install the fsspec package for it") from exc


def _stat(fs, path: str) -> tuple[int, float]:
    try:
        info = fs.info(path)
    except (OSError, ValueError):
        return -1, 0.0
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created") or 0.0
    if hasattr(mtime, "timestamp"):
        mtime = mtime.timestamp()
    return int(info.get("size") or 0), float(mtime)


def _is_local(fs) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _name(fs, path: str) -> str:
    return path if _is_local(fs) else fs.unstrip_protocol(path)


def _list_entries(fs, list_path: str) -> list[str]:
    """Entries of a text or CSV list, relative ones joined to the list's folder."""
    try:
        with fs.open(list_path, "rb") as fh:
            text = fh.read().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LibraryError(f"{list_path}: cannot read the list ({exc})") from exc
    if list_path.lower().endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        col = header.index("path") if "path" in header else 0
        data_rows = rows[1:] if "path" in header else rows
        entries = [r[col].strip() for r in data_rows if len(r) > col and r[col].strip()]
    else:
        entries = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        entries = [e for e in entries if e]
    base = list_path.rsplit("/", 1)[0]
    out = []
    for e in entries:
        if is_url(e) or e.startswith("file://"):
            out.append(e)
        elif e.startswith("/"):
            out.append(_name(fs, e))
        else:
            out.append(_name(fs, f"{base}/{e}"))
    return out


def list_videos(spec: str) -> list[Source]:
    """The videos INPUT names, in a stable order (sorted for folders and globs, as listed for lists)."""
    fs, root = _fs(spec)
    if any(c in root for c in "*?["):
        found = [p for p in fs.glob(root) if fs.isfile(p)]
        if not found:
            raise LibraryError(f"{spec}: the pattern matches no file")
        paths = [_name(fs, p) for p in sorted(found)]
    elif fs.isdir(root):
        found = [p for p in fs.find(root) if PurePosixPath(p).suffix.lower() in MEDIA_SUFFIXES]
        if not found:
            raise LibraryError(f"{spec}: no video or audio file ({', '.join(sorted(MEDIA_SUFFIXES))}) in this folder")
        paths = [_name(fs, p) for p in sorted(found)]
    elif fs.isfile(root):
        paths = _list_entries(fs, root) if PurePosixPath(root).suffix.lower() in LIST_SUFFIXES else [_name(fs, root)]
        if not paths:
            raise LibraryError(f"{spec}: the list names no video")
    else:
        raise LibraryError(f"{spec}: no such folder, file or pattern")
    seen: set[str] = set()
    sources = []
    for p in paths:
        if p in seen:
            continue
        seen.add(p)
        efs, inner = _fs(p)
        sources.append(Source(p, *_stat(efs, inner)))
    return sources


def stat_source(path: str) -> Source:
    fs, inner = _fs(path)
    return Source(path, *_stat(fs, inner))


def sha256_source(source: Source, chunk: int = 1 << 20) -> str:
    """Content hash of a video, streamed (a URL is read once, without a local copy)."""
    fs, inner = _fs(source.path)
    h = hashlib.sha256()
    with fs.open(inner, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def open_source(source: Source, chunk: int = 1 << 20) -> Iterator[tuple[Path, str]]:
    """(local path to decode, content sha256) of a video: the file itself, or for a URL a private
    temporary copy under the video's own name (results name the video, not the copy), hashed while
    it is copied and removed afterwards."""
    if not is_url(source.path):
        yield Path(_fs(source.path)[1]), sha256_source(source, chunk)
        return
    fs, inner = _fs(source.path)
    tmp = tempfile.mkdtemp(prefix="video-emotion-batch-")
    try:
        target = Path(tmp) / (source.name or "video")
        h = hashlib.sha256()
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # private to this user
        with fs.open(inner, "rb") as src, os.fdopen(fd, "wb") as dst:
            while block := src.read(chunk):
                h.update(block)
                dst.write(block)
        yield target, h.hexdigest()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
