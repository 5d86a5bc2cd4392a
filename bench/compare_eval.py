"""Side by side: the default (accurate) mode's no-transcript lip-sync figures in two or more `model.evaluate --json`
files (before / after a change), per set, for every take, with the worst take of each file.

    .venv/bin/python bench/compare_eval.py before.json after.json [more.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIGURES = (("bilabial", max), ("m", max), ("open", max), ("pause", max), ("slcc", max), ("lag_ms", None),
           ("jitter", min))


def takes(rows: dict) -> dict[str, dict]:
    return {name: r for name, r in rows.items()
            if name == "neural accurate" or name.startswith("neural accurate, seed")}


def main(argv=None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    runs = [json.loads(p.read_text()) for p in paths]
    sets = [s for s in ("real", "testdata", "tts") if all(s in r for r in runs)]
    print(f"{'set':9s} {'file':28s} {'take':8s} " + " ".join(f"{f:>8s}" for f, _ in FIGURES))
    for s in sets:
        for path, run in zip(paths, runs, strict=True):
            rows = takes(run[s])
            for name, r in rows.items():
                take = "0" if name == "neural accurate" else name.rsplit(" ", 1)[-1]
                print(f"{s:9s} {path.stem[:28]:28s} {take:8s} " + " ".join(f"{r[f]:8.4f}" for f, _ in FIGURES))
            worst = [(min if best is max else max)(r[f] for r in rows.values()) if best else
                     max(abs(r[f]) for r in rows.values()) for f, best in FIGURES]
            print(f"{s:9s} {path.stem[:28]:28s} {'worst':8s} " + " ".join(f"{v:8.4f}" for v in worst))
    return 0


if __name__ == "__main__":
    sys.exit(main())
