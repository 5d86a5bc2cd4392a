"""Ordered grapheme rules with context, the machinery of every language's letter-to-sound table.

A table is plain text, one rule a line: ``spelling  phones  [/ left _ right]``; the letters a language says as the
ARPAbet phone of the same name everywhere (b, m, p, ...) are given once as ``plain`` and come after every written
rule. ``phones`` are ARPAbet (``-`` for a
silent letter); ``left`` and ``right`` are regular expressions that must match just before and just after the
spelling, inside the word padded with ``#`` at both ends. At each position the longest spelling whose contexts match
wins; among rules of equal length the first written wins, so special cases go above the general rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..phones import PHONE_INDEX, SIL, VOWELS


@dataclass(frozen=True)
class Rule:
    spelling: str
    phones: tuple[str, ...]
    left: re.Pattern | None
    right: re.Pattern | None


class Rules:
    """One language's table, compiled; ``pronounce(word)`` gives the ARPAbet phones of a lower-case word."""

    def __init__(self, table: str, classes: dict[str, str] | None = None, plain: str = "") -> None:
        """``classes``: names written in capitals in the contexts (``V`` → ``[aeiou]``), expanded before compiling;
        ``plain``: letters said as the phone of the same name where no written rule of theirs matches."""
        self.rules: list[Rule] = []
        for line in [*table.strip().splitlines(), *(f"{letter} {letter}" for letter in plain)]:
            line = line.split("%", 1)[0].strip()
            if not line:
                continue
            head, _, context = line.partition("/")
            spelling, *phones = head.split()
            phones = [] if phones == ["-"] else phones
            bad = [p for p in phones if p not in PHONE_INDEX or p == SIL]
            if bad:
                raise ValueError(f"rule {line!r}: {bad} are not ARPAbet phones")
            left = right = None
            if context.strip():
                left_text, _, right_text = context.strip().partition("_")
                left_text, right_text = _expand(left_text.strip(), classes), _expand(right_text.strip(), classes)
                left = re.compile(f"(?:{left_text})$") if left_text else None
                right = re.compile(right_text) if right_text else None
            self.rules.append(Rule(spelling, tuple(phones), left, right))
        self.rules.sort(key=lambda r: -len(r.spelling))  # stable: equal lengths keep their written order
        self.letters = frozenset("".join(r.spelling for r in self.rules))

    def pronounce(self, word: str) -> list[str]:
        """ARPAbet phones of ``word`` (lower case); letters no rule knows are skipped."""
        padded = f"#{word}#"
        out: list[str] = []
        i = 1
        while i < len(padded) - 1:
            for rule in self.rules:
                n = len(rule.spelling)
                if (padded.startswith(rule.spelling, i)
                        and (rule.left is None or rule.left.search(padded, 0, i))
                        and (rule.right is None or rule.right.match(padded, i + n))):
                    out += rule.phones
                    i += n
                    break
            else:
                i += 1
        return out


def _expand(context: str, classes: dict[str, str] | None) -> str:
    for name, letters in (classes or {}).items():
        context = context.replace(name, letters)
    return context


def collapse_doubles(phones: list[str]) -> list[str]:
    """One phone where a doubled consonant gave two (Italian ``tt``, Polish ``nn``): one closure, held longer."""
    out: list[str] = []
    for p in phones:
        if out and p == out[-1] and p not in VOWELS:
            continue
        out.append(p)
    return out

