"""How many cores a FacePolicy process uses: the one rule for the phone decoders' threads (core.recognition; the
models run one thread each, core.model_files).

``FACEPOLICY_CORES`` (an environment variable, a whole number ≥ 1) caps it: `facepolicy bake --jobs N` sets it for
its N worker processes to their share of the machine and a Ray task to its one CPU, so side-by-side processes do not
each start a decoder per core; a user may set it to leave cores to other work. A value that is not a whole number
≥ 1 is ignored.
"""

from __future__ import annotations

import os

BUDGET_VARIABLE = "FACEPOLICY_CORES"


def machine_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def core_budget() -> int | None:
    """FACEPOLICY_CORES when it is set to a whole number ≥ 1, else None."""
    try:
        value = int(os.environ.get(BUDGET_VARIABLE, ""))
    except ValueError:
        return None
    return value if value >= 1 else None


def cores() -> int:
    """The cores this process uses: the machine's, capped by FACEPOLICY_CORES."""
    budget = core_budget()
    return min(machine_cores(), budget) if budget else machine_cores()


def share(jobs: int) -> int:
    """Each of ``jobs`` processes' share of this process's cores (at least 1)."""
    return max(1, cores() // max(1, int(jobs)))
