"""Semantic versions (semver.org 2.0.0): parsing, ordering and the kind of a change."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)

# The same grammar without named groups, which JSON Schema (ECMA 262) regexes lack.
SEMVER_PATTERN = re.sub(r"\?P<\w+>", "", _SEMVER.pattern)


class VersionChange(StrEnum):
    """How a version moved between two revisions of the manifest."""

    MAJOR = "major"
    MINOR = "minor"
    PATCH = "patch"
    PRERELEASE = "prerelease"
    BUILD = "build"
    DOWNGRADE = "downgrade"
    NONE = "none"


@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: str = ""

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _SEMVER.match(text)
        if not match:
            raise ValueError(f"'{text}' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.4.2)")
        pre = tuple(match["pre"].split(".")) if match["pre"] else ()
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"]),
                   pre, match["build"] or "")

    def _precedence(self) -> tuple[object, ...]:
        # A release ranks above its prereleases; numeric identifiers rank below alphanumeric.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self._precedence() < other._precedence()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + self.build
        return text


def is_semver(text: str) -> bool:
    return bool(_SEMVER.match(text))


def classify(old: str, new: str) -> VersionChange:
    """The kind of change from `old` to `new`: major, minor, patch, ... or downgrade."""
    before, after = Version.parse(old), Version.parse(new)
    if after < before:
        return VersionChange.DOWNGRADE
    if (after.major, after.minor, after.patch) != (before.major, before.minor, before.patch):
        if after.major != before.major:
            return VersionChange.MAJOR
        if after.minor != before.minor:
            return VersionChange.MINOR
        return VersionChange.PATCH
    if after.prerelease != before.prerelease:
        return VersionChange.PRERELEASE
    if after.build != before.build:
        return VersionChange.BUILD
    return VersionChange.NONE


def label_safe(version: str) -> str:
    """The version as a Kubernetes label value or image tag: `+` is not allowed there."""
    return version.replace("+", "_")
