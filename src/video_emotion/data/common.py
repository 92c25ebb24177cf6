"""What a corpus adapter returns: records for the manifest, every file it could not use with why, and
the files it left out as second copies of a recording it already has."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CorpusScan:
    source: str
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (left-out file, the record's file)

    def reject(self, path: Path | str, reason: str) -> None:
        self.rejected.append((str(path), reason))

    def duplicate(self, path: Path | str, kept: Path | str) -> None:
        """`path` holds the same recording as `kept`, which is used instead (one record per recording)."""
        self.duplicates.append((str(path), str(kept)))

    def reject_unknown(self, path: Path | str, fields: dict[str, bool]) -> bool:
        """Reject `path` naming every field value that is not known (`{description: is_known}`)."""
        unknown = [what for what, known in fields.items() if not known]
        if unknown:
            self.reject(path, "unknown " + ", ".join(unknown))
        return bool(unknown)

    def summary(self, examples: int = 5) -> dict[str, Any]:
        reasons: dict[str, int] = {}
        for _, r in self.rejected:
            reasons[r] = reasons.get(r, 0) + 1
        return {"source": self.source, "records": len(self.records), "rejected": len(self.rejected),
                "rejected_by_reason": reasons,
                "rejected_examples": [f"{p}: {r}" for p, r in self.rejected[:examples]],
                "duplicates": len(self.duplicates),
                "duplicate_examples": [f"{p}: same recording as {k}" for p, k in self.duplicates[:examples]]}
