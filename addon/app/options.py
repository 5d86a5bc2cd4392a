"""Argument types the commands share."""

from __future__ import annotations

import argparse

from ..core.errors import FacePolicyError
from ..core.letters import told_language


def language_argument(value: str) -> str:
    """``--transcript-language``'s value as given, checked while the arguments are parsed (core.letters.told_language):
    one the CLI does not accept is a usage error (exit 2, the choices listed), like any other bad argument."""
    try:
        told_language(value)
    except FacePolicyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value
