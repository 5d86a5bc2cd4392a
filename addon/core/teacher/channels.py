"""Writing a curve into a block of frames by channel name: the teacher's parts each add their share."""

from __future__ import annotations

import numpy as np

from .. import spec


def set_channel(values: np.ndarray, name: str, curve) -> None:
    values[:, spec.CHANNEL_INDEX[name]] = curve


def add_channel(values: np.ndarray, name: str, curve) -> None:
    values[:, spec.CHANNEL_INDEX[name]] += curve
