"""Problems found in a manifest: where they are and what is wrong, one message each.

Validation never stops at the first problem; every check appends to a list of
`Problem`s, and the CLI (or the Pulumi program) prints them all and exits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a manifest, located as precisely as the input allows."""

    file: str
    line: int | None
    message: str
    model: str | None = None
    path: str = ""
    environment: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.model:
            scope = f"model '{self.model}'"
            if self.environment:
                scope += f" (environment '{self.environment}')"
            parts.append(scope)
        elif self.environment:
            parts.append(f"environment '{self.environment}'")
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class ManifestError(Exception):
    """Raised with every problem of an input that cannot be used."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(Exception):
    """A manifest could not be read at all: no repository, no such ref, no such file."""
