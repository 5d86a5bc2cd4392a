"""Batch manifests: the rows of a CSV or JSON file as raw values, before they are checked (plan.py)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FacePolicyError
from ..fileio import read_user_text

MANIFEST_COLUMNS = ("audio", "output", "style", "seed", "object", "engine", "transcript", "transcript_language",
                    "model")
# Other spellings accepted in a manifest header or JSON row.
_COLUMN_ALIASES = {"output_name": "output", "name": "output", "out": "output", "file": "audio", "wav": "audio",
                   "model_dir": "model", "model_folder": "model"}


@dataclass
class ManifestEntry:
    """A manifest row as read, before validation: a dict of raw values, or an error message."""

    source: str
    values: dict = field(default_factory=dict)
    error: str = ""


def _column(name: str) -> str:
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    return _COLUMN_ALIASES.get(key, key)


def read_manifest(path) -> list[ManifestEntry]:
    """The rows of a CSV or JSON manifest. Whole-file problems raise FacePolicyError; row problems are kept."""
    path = Path(path)
    if not path.is_file():
        raise FacePolicyError(f'manifest "{path}": file not found')
    text = read_user_text(path, "manifest")  # as a transcript is read: Excel's and Notepad's encodings too
    if path.suffix.lower() == ".json" or text.lstrip().startswith(("[", "{")):
        return _read_json_manifest(text, path.name)
    return _read_csv_manifest(text, path.name)


def _read_json_manifest(text: str, name: str) -> list[ManifestEntry]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FacePolicyError(f'manifest "{name}": not valid JSON ({exc})') from None
    if isinstance(data, dict):
        data = data.get("rows", data.get("lines"))
    if not isinstance(data, list):
        raise FacePolicyError(f'manifest "{name}": expected a list of rows, or {{"rows": [...]}}')
    entries = []
    for i, item in enumerate(data, start=1):
        source = f"{name} row {i}"
        if isinstance(item, str):
            item = {"audio": item}
        if not isinstance(item, dict):
            entries.append(ManifestEntry(source, error=f"expected an object with an 'audio' key, got {item!r}"))
            continue
        values = {_column(k): v for k, v in item.items()}
        unknown = sorted(set(values) - set(MANIFEST_COLUMNS))
        if unknown:
            entries.append(ManifestEntry(source, values, f"unknown key(s) {', '.join(unknown)}; "
                                                         f"allowed: {', '.join(MANIFEST_COLUMNS)}"))
            continue
        entries.append(ManifestEntry(source, values))
    return entries


def _read_csv_manifest(text: str, name: str) -> list[ManifestEntry]:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise FacePolicyError(f'manifest "{name}": the file has no rows')
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [_column(h) for h in rows[0]]
    if "audio" not in header:
        raise FacePolicyError(
            f'manifest "{name}": the header (line {lines[0][0]}) needs an "audio" column; '
            f"columns: {', '.join(MANIFEST_COLUMNS)}"
        )
    unknown = [h for h in header if h not in MANIFEST_COLUMNS]
    if unknown:
        raise FacePolicyError(f'manifest "{name}": unknown column(s) {", ".join(unknown)}; '
                              f"allowed: {', '.join(MANIFEST_COLUMNS)}")
    entries = []
    for (line_no, _), cells in zip(lines[1:], rows[1:], strict=True):
        source = f"{name} line {line_no}"
        if len(cells) != len(header):
            entries.append(ManifestEntry(source, error=f"{len(cells)} cells but the header has {len(header)}"))
            continue
        entries.append(ManifestEntry(source, {h: c.strip() for h, c in zip(header, cells, strict=True)}))
    return entries

