"""One way to resume: a stage's marker records its settings and its inputs' hashes, written after its outputs.

A re-run reuses a stage's outputs only when the marker exists, says the same settings and inputs, and every
output named is there; any change redoes the stage. A folder-level stage (a bundle training, an evaluation) keeps
its marker in a file of its own; a per-image stage (preprocessing, harmonization, translation) keeps it under the
``Resume`` key of each image's JSON sidecar, which is written last. Training inside a MONAI bundle keeps MONAI's own
checkpoint resume (:class:`pipeline.engines.ResumeFromLatest`); this marker decides whether to run it at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pipeline.atomic import write_json
from pipeline.run.digest import file_sha256, normalised

__all__ = ["StageMarker"]


@dataclass(frozen=True)
class StageMarker:
    """The completion record of one stage.

    Args:
        path: the marker file (JSON), inside the stage's output folder.
        settings: every setting that shapes the outputs (JSON-able).
        inputs: files whose content may change under the same path, by name; their SHA-256 is recorded.
        digests: input digests already computed, by name (e.g. a list of image hashes).
        key: when set, the marker is the entry ``key`` of the JSON file at ``path`` (an image's sidecar, which the
            stage writes itself with ``{key: marker.record(), ...}``), not the whole file.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> folder = Path(tempfile.mkdtemp())
        >>> marker = StageMarker(folder / "settings.json", {"seed": 0})
        >>> marker.is_complete()
        False
        >>> marker.mark_complete()
        >>> marker.is_complete(), StageMarker(folder / "settings.json", {"seed": 1}).is_complete()
        (True, False)
    """

    path: Path
    settings: Mapping[str, Any]
    inputs: Mapping[str, str | Path] = field(default_factory=dict)
    digests: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None

    def record(self) -> dict[str, Any]:
        """What the marker file holds: the settings and the inputs' digests, normalised as stored."""
        inputs = {**{name: file_sha256(p) for name, p in self.inputs.items()}, **self.digests}
        return normalised({"settings": dict(self.settings), "inputs": inputs})

    def is_complete(self, *outputs: str | Path) -> bool:
        """True when the marker records exactly these settings and inputs and every output exists."""
        path = Path(self.path)
        if not path.exists() or not all(Path(p).exists() for p in outputs):
            return False
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError:  # a marker cut short is no marker
            return False
        if self.key is not None:
            stored = stored.get(self.key) if isinstance(stored, dict) else None
        return stored == self.record()

    def mark_complete(self) -> None:
        """Write the marker file (atomically); call it after the last output is written."""
        if self.key is not None:
            raise ValueError(f"{self.path}: an embedded marker is written by its stage as the {self.key!r} entry")
        write_json(self.path, self.record())
