"""Journey tests: shared helpers live in journey.py (import them from there: `from journey import facepolicy`);
a module named conftest is not unique across the test folders."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "unit"))  # shared readers, e.g. the PNG decoder
