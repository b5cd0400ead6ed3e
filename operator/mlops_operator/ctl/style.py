"""Colour for the plugin's text output: on a terminal, never in pipes or files, never with NO_COLOR set."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

# Phases by how a person should read them; every phase of the four kinds is in one group.
GOOD = {"Ready", "Succeeded", "Promoted", "Healthy", "Approved", "Passed", "True"}
BUSY = {"Pending", "Validating", "Running", "Registered", "Evaluating", "Progressing", "RollingBack", "Unknown"}
BAD = {"Invalid", "Failed", "Refused", "Rejected", "RolledBack", "Degraded", "False", "Warning"}
QUIET = {"Superseded"}

_CODES = {"green": "32", "yellow": "33", "red": "31", "dim": "2", "bold": "1", "cyan": "36"}


def wants_colour(stream: IO[str], env: Mapping[str, str]) -> bool:
    """Colour only on a TTY and only when NO_COLOR (https://no-color.org) is unset or empty."""
    return bool(stream.isatty()) and not env.get("NO_COLOR")


@dataclass(frozen=True)
class Style:
    """Wraps text in ANSI colours, or leaves it alone when colour is off."""

    colour: bool = False

    def paint(self, text: str, colour: str) -> str:
        """`text` in one colour (or unchanged)."""
        return f"\x1b[{_CODES[colour]}m{text}\x1b[0m" if self.colour and text else text

    def phase(self, phase: str | None) -> str:
        """A phase (or condition status) coloured by what it means; '-' when unset."""
        text = phase or "-"
        if text in GOOD:
            return self.paint(text, "green")
        if text in BAD:
            return self.paint(text, "red")
        if text in BUSY:
            return self.paint(text, "yellow")
        return self.paint(text, "dim") if text in QUIET else text

    def kind(self, text: str) -> str:
        """A kind name."""
        return self.paint(text, "cyan")

    def name(self, text: str) -> str:
        """An object name."""
        return self.paint(text, "bold")

    def verdict(self, passed: bool | None) -> str:
        """✓ passed, ✗ failed, ? no verdict yet."""
        if passed is None:
            return self.paint("?", "yellow")
        return self.paint("✓", "green") if passed else self.paint("✗", "red")
