"""The manifest in git: its text at any ref, the commit it came from, the commits that changed it.

All git access of modelfleet goes through this module (GitPython); everything
else takes text or parsed manifests.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import git
from gitdb.exc import BadName, BadObject

from modelfleet.manifest.problems import SourceError
from modelfleet.manifest.rules import DirectoryPaths, LocalPaths, PathKind


def text_digest(text: str) -> str:
    """Content digest of a manifest: two revisions with the same text deploy the same."""
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


CHECKOUT_DIR = ".modelfleet/checkout"
"""Files of a deployed ref are written here (git-ignored) for uploads and builds."""


class FileAbsentError(SourceError):
    """The repository and the ref exist, but the file does not exist at that ref."""


class UnknownRefError(SourceError):
    """No commit of the repository answers to the ref: a tag not fetched, or a typo.

    `extra` adds what this clone lacks (a branch neither local nor remote-tracking, a
    history cut by a shallow clone) before the two usual fixes.
    """

    def __init__(self, ref: str, repository: str, extra: str = "") -> None:
        super().__init__(f"unknown git ref '{ref}' in {repository}; {extra}if it is a tag, "
                         "this clone does not have it yet (`git fetch --tags`; a clone of a "
                         "branch brings no tags), otherwise the ref is misspelled (`git tag`, "
                         "`git log --oneline` list what exists)")
        self.ref = ref


class ShallowHistoryError(SourceError):
    """The ref names a commit a shallow clone (`git clone --depth N`) does not hold."""

    def __init__(self, ref: str, repository: str, cut: list[str]) -> None:
        ends = ", ".join(sha[:12] for sha in cut)
        super().__init__(f"git ref '{ref}' lies beyond the history of this shallow clone "
                         f"({repository}, history cut at {ends}); deepen it with "
                         "`git fetch --unshallow` (in GitHub Actions: actions/checkout with "
                         "`fetch-depth: 0`)")
        self.ref = ref


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    date: datetime
    summary: str

    @property
    def short(self) -> str:
        return self.sha[:12]

    @classmethod
    def of(cls, commit: git.Commit) -> CommitInfo:
        summary = commit.summary if isinstance(commit.summary, str) else commit.summary.decode()
        return cls(commit.hexsha, str(commit.author.name), commit.committed_datetime, summary)


@dataclass(frozen=True)
class ManifestText:
    """A manifest's text and where it came from: a ref's commit, or the working tree."""

    text: str
    file: str
    """How messages name the file: the path as the user gave it."""
    ref: str | None
    """The ref asked for; None for the working tree."""
    commit: CommitInfo | None
    """The commit the text is at (for the working tree: HEAD), None outside git."""
    dirty: bool
    """True when the working tree's text differs from the commit's."""
    paths: LocalPaths
    """Where the manifest's relative paths (artifacts, build contexts) are looked up."""
    moved_from: str | None = None
    """The file's path at the ref when it has been renamed since (`git mv`); else None."""

    @property
    def digest(self) -> str:
        return text_digest(self.text)

    @property
    def label(self) -> str:
        """A short description for reports: `v2026.11.1 (3f2a9c1d0b7e)` or `working tree`;
        `v1 (3f2a9c1d0b7e, as models.yaml)` when the file had another path at the ref."""
        if self.ref is None:
            return "working tree" + (" (uncommitted changes)" if self.dirty else "")
        moved = f", as {self.moved_from}" if self.moved_from else ""
        return f"{self.ref} ({self.commit.short}{moved})" if self.commit else self.ref


@dataclass(frozen=True)
class GitTreePaths:
    """Paths in a commit's tree, relative to the folder the manifest is in."""

    commit: git.Commit
    folder: str
    """The manifest's folder inside the repository, POSIX style; '' for the top."""
    checkout_root: Path
    """Where files are written out when they must exist on disk (uploads, builds)."""

    def _item(self, relative: str) -> git.Tree | git.Blob | None:
        path = posixpath.normpath(posixpath.join(self.folder, relative))
        if path.startswith("../") or path == "..":
            return None
        if path == ".":
            return self.commit.tree
        try:
            item = self.commit.tree / path
        except KeyError:
            return None
        return item if isinstance(item, (git.Tree, git.Blob)) else None

    def kind(self, relative: str) -> PathKind | None:
        item = self._item(relative)
        if item is None:
            return None
        return "dir" if item.type == "tree" else "file"

    def local(self, relative: str) -> Path:
        """The file or folder as of the commit, written out once under `checkout_root`.

        It is stored under its git object's hash, so the same content has the same
        path at every ref: moving a stack from one tag to another does not look like
        a new build context unless the context really changed.
        """
        item = self._item(relative)
        if item is None:
            raise SourceError(f"{relative} does not exist at commit {self.commit.hexsha[:12]}")
        if isinstance(item, git.Blob):  # a file keeps its name: it becomes an object key
            target = self.checkout_root / item.hexsha / PurePosixPath(item.path).name
            blobs = [(item, target)]
        else:
            target = self.checkout_root / item.hexsha
            blobs = [(blob, target / PurePosixPath(blob.path).relative_to(item.path))
                     for blob in item.traverse() if isinstance(blob, git.Blob)]
        done = target.with_name(target.name + ".complete")
        if not done.exists():
            for blob, out in blobs:
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(blob.data_stream.read())
                if blob.mode & 0o111:
                    out.chmod(0o755)
            done.parent.mkdir(parents=True, exist_ok=True)
            done.touch()
        return target


def open_repository(path: Path) -> git.Repo:
    """The repository that holds `path`, or a `SourceError` saying there is none."""
    start = path if path.is_dir() else path.parent
    try:
        return git.Repo(start.resolve(), search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise SourceError(f"{start}: not inside a git repository") from error


def commit_at(repo: git.Repo, ref: str) -> git.Commit:
    """The commit a ref names (branch, tag, sha, `HEAD~2`), or a clear `SourceError`.

    A branch with no local head (a CI checkout: detached HEAD, `origin/main` only) is
    its remote-tracking branch, `origin`'s first. A commit a shallow clone cut off is a
    `ShallowHistoryError` saying how to deepen the clone; any other unknown ref an
    `UnknownRefError` saying what this clone lacks.
    """
    where = str(repo.working_tree_dir)
    try:
        commit = repo.commit(ref)
    except (BadName, BadObject, ValueError, IndexError, NotImplementedError,
            git.GitCommandError) as error:
        parsed = _rev_parse(repo, ref)  # what GitPython does not read (`HEAD@{yesterday}`)
        if parsed is not None:
            return present(repo, ref, parsed)
        tracking = remote_tracking(repo, ref)
        if tracking is not None:
            return present(repo, ref, tracking)
        cut = shallow_commits(repo)
        if cut and _reaches_past_cut(ref):
            raise ShallowHistoryError(ref, where, sorted(cut)) from error
        raise UnknownRefError(ref, where, _missing_branch(repo, ref, cut)) from error
    return present(repo, ref, commit)


def _rev_parse(repo: git.Repo, ref: str) -> git.Commit | None:
    """The commit `git rev-parse --verify` finds for `ref` (every revision syntax of
    git's gitrevisions(7)), or None. A ref that starts with '-' is never an option."""
    if not ref or ref.startswith("-") or "\0" in ref:
        return None
    try:
        sha = repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}")
        return repo.commit(sha.strip())
    except (git.GitCommandError, BadName, BadObject, ValueError):
        return None


def present(repo: git.Repo, ref: str, commit: git.Commit) -> git.Commit:
    """`commit` when its object is in the repository; a shallow clone names parents it
    does not hold (`HEAD~1` of `git clone --depth 1`)."""
    try:
        repo.odb.info(commit.binsha)
    except (BadName, BadObject, ValueError) as error:
        cut = shallow_commits(repo)
        if cut:
            raise ShallowHistoryError(ref, str(repo.working_tree_dir), sorted(cut)) from error
        raise UnknownRefError(ref, str(repo.working_tree_dir)) from error
    return commit


def shallow_commits(repo: git.Repo) -> set[str]:
    """The commits where a shallow clone's history is cut (`.git/shallow`); empty if none.

    git keeps them one sha a line in `$GIT_DIR/shallow` (git's Documentation/technical/
    shallow.txt); a complete clone has no such file.
    """
    try:
        text = (Path(repo.common_dir) / "shallow").read_text(encoding="ascii")
    except OSError:
        return set()
    return {line.strip() for line in text.splitlines() if line.strip()}


def _reaches_past_cut(ref: str) -> bool:
    """`HEAD~3`, `main^`, `v1~2^2`: a ref that walks back through parents."""
    return "~" in ref or "^" in ref


def remote_tracking(repo: git.Repo, ref: str) -> git.Commit | None:
    """The commit of remote-tracking branch `<remote>/<ref>` (origin first), or None."""
    found = [reference for reference in repo.references
             if isinstance(reference, git.RemoteReference) and reference.remote_head == ref
             and reference.remote_head != "HEAD"]
    found.sort(key=lambda reference: reference.remote_name != "origin")
    return found[0].commit if found else None


def _missing_branch(repo: git.Repo, ref: str, cut: set[str]) -> str:
    """What this clone lacks, when `ref` could be a branch name: neither a local branch
    nor a remote-tracking one."""
    said = ""
    if not any(c in ref for c in "~^:@{}"):
        remotes = [remote.name for remote in repo.remotes] or ["origin"]
        said = (f"there is no local branch '{ref}' and no remote-tracking branch "
                f"'{remotes[0]}/{ref}' (fetch it: `git fetch {remotes[0]} "
                f"{ref}:refs/remotes/{remotes[0]}/{ref}`); ")
    if cut:
        said += "this clone is shallow (`git fetch --unshallow` brings the whole history); "
    return said


def repo_relative(repo: git.Repo, file: Path) -> str:
    """`file` as a POSIX path from the top of the repository."""
    top = Path(str(repo.working_tree_dir)).resolve()
    try:
        return file.resolve().relative_to(top).as_posix()
    except ValueError as error:
        raise SourceError(f"{file} is outside the repository at {top}") from error


def read_manifest(file: Path, ref: str | None = None, display: str | None = None) -> ManifestText:
    """The manifest at `ref` (any git ref), or in the working tree when `ref` is None."""
    shown = display or str(file)
    if ref is None:
        return _read_working_tree(file, shown)
    repo = open_repository(file)
    commit = commit_at(repo, ref)
    relative = repo_relative(repo, file)
    at_ref = path_at(repo, commit, relative)
    text = _blob_text(commit, at_ref, ref)
    folder = posixpath.dirname(at_ref)
    checkout = Path(str(repo.working_tree_dir)) / CHECKOUT_DIR
    return ManifestText(text, shown, ref, CommitInfo.of(commit), False,
                        GitTreePaths(commit, folder, checkout),
                        at_ref if at_ref != relative else None)


def text_at(file: Path, ref: str) -> str:
    """Any file's text at a ref, under the path it had there (renames followed);
    `FileAbsentError` when it did not exist there."""
    repo = open_repository(file)
    commit = commit_at(repo, ref)
    relative = repo_relative(repo, file)
    return _blob_text(commit, path_at(repo, commit, relative), ref)


def path_at(repo: git.Repo, commit: git.Commit, relative: str) -> str:
    """The path `relative` (as the file is named now) had at `commit`.

    A file moved since (`git mv models.yaml deploy/models.yaml`) is found under its
    earlier names, as `git log --follow` finds them from HEAD; `relative` itself when
    it exists at `commit` or no earlier name does.
    """
    if _blob_at(commit, relative) is not None or not repo.head.is_valid():
        return relative
    for name in dict.fromkeys(path for _, path, _ in _followed(repo, "HEAD", relative)):
        if _blob_at(commit, name) is not None:
            return name
    return relative


def _blob_at(commit: git.Commit, relative: str) -> git.Blob | None:
    try:
        item = commit.tree / relative
    except KeyError:
        return None
    return item if isinstance(item, git.Blob) else None


def _followed(repo: git.Repo, tip: str, relative: str) -> list[tuple[str, str, bool]]:
    """Newest first: (commit sha, the file's path after the commit, deleted by it) for each
    commit up to `tip` that changed the file, following renames (`git log --follow`)."""
    marker = "\x1e"
    out = repo.git.log("--follow", f"--format={marker}%H", "--name-status", "--no-color",
                       tip, "--", relative)
    found: list[tuple[str, str, bool]] = []
    name = relative
    for chunk in out.split(marker)[1:]:
        lines = [line for line in chunk.splitlines() if line.strip()]
        sha, changes = lines[0].strip(), [line.split("\t") for line in lines[1:]]
        after, deleted, copied = name, False, False
        for change in changes:
            if change[0].startswith("R") and len(change) == 3:
                after, name = change[2], change[1]
            elif change[0].startswith("C") and len(change) == 3:
                after, copied = change[2], True
            elif change[0] == "D":
                deleted = True
        found.append((sha, after, deleted))
        if copied:  # a new file like another one: what git shows before it is the other's
            break
    return found


def _read_working_tree(file: Path, shown: str) -> ManifestText:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise SourceError(f"{shown}: no such file") from error
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"{shown}: cannot be read ({error})") from error
    commit: CommitInfo | None = None
    dirty = False
    try:
        repo = open_repository(file)
    except SourceError:
        repo = None
    if repo is not None and repo.head.is_valid():
        head = repo.head.commit
        commit = CommitInfo.of(head)
        try:
            dirty = _blob_text(head, repo_relative(repo, file), "HEAD") != text
        except FileAbsentError:
            dirty = True
    return ManifestText(text, shown, None, commit, dirty, DirectoryPaths(file.parent))


def _blob_text(commit: git.Commit, relative: str, ref: str) -> str:
    try:
        blob = commit.tree / relative
    except KeyError as error:
        raise FileAbsentError(f"{relative} does not exist at '{ref}' "
                              f"(commit {commit.hexsha[:12]})") from error
    if blob.type != "blob":
        raise SourceError(f"{relative} is a folder at '{ref}', not a manifest")
    data: bytes = blob.data_stream.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceError(f"{relative} at '{ref}' is not UTF-8 text") from error


@dataclass(frozen=True)
class FileRevision:
    """The manifest file as one commit left it."""

    commit: CommitInfo
    blob: git.Blob | None
    """None when the commit deleted the file."""
    cut: bool = False
    """The commit is where a shallow clone's history ends: its parents are not here, so
    what it holds may have been set by earlier commits."""

    @property
    def blob_sha(self) -> str | None:
        return self.blob.hexsha if self.blob is not None else None

    def text(self) -> str | None:
        if self.blob is None:
            return None
        data: bytes = self.blob.data_stream.read()
        return data.decode("utf-8", errors="replace")


def file_revisions(file: Path, ref: str = "HEAD") -> Iterator[FileRevision]:
    """Oldest first: each commit up to `ref` that changed `file`, with the file after it.

    Renames are followed (`git log --follow`): a manifest moved with `git mv` keeps
    its history. In a shallow clone the oldest commit is marked `cut`.
    """
    repo = open_repository(file)
    if not repo.head.is_valid():
        return
    relative = repo_relative(repo, file)
    tip = commit_at(repo, ref)
    cut = shallow_commits(repo)
    for sha, path, deleted in reversed(_followed(repo, tip.hexsha, relative)):
        commit = repo.commit(sha)
        blob = None if deleted else _blob_at(commit, path)
        yield FileRevision(CommitInfo.of(commit), blob, sha in cut)
