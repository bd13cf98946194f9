"""Real git repositories in temporary folders, for tests of history, refs and diffs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import git

AUTHOR = git.Actor("Ada Lovelace", "ada@example.com")


class GitRepo:
    """A repository with helpers to write files, commit and tag, with increasing dates."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = git.Repo.init(root, initial_branch="main")
        self._clock = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def commit(self, message: str, *files: str) -> str:
        """Stage `files` (default: everything) and commit; returns the sha."""
        self.repo.git.add(*(files or ["--all"]))
        self._clock += timedelta(hours=1)
        stamp = f"{int(self._clock.timestamp())} +0000"
        commit = self.repo.index.commit(message, author=AUTHOR, committer=AUTHOR,
                                        author_date=stamp, commit_date=stamp)
        return commit.hexsha

    def tag(self, name: str) -> None:
        self.repo.create_tag(name)

    def remove(self, relative: str) -> None:
        self.repo.index.remove([relative], working_tree=True)
