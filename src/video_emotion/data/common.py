"""What a corpus adapter returns: records for the manifest and every file it could not use, with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class CorpusScan:
    source: str
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)

    def reject(self, path: Path | str, reason: str) -> None:
        self.rejected.append((str(path), reason))

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
                "rejected_examples": [f"{p}: {r}" for p, r in self.rejected[:examples]]}
