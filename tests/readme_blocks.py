"""The README's checked examples: fenced blocks marked `<!-- readme-test -->`, run in a fresh clone.

A marked block is a terminal session: a line `$ COMMAND` runs COMMAND (bash, from the
clone's top folder; the block's commands share one shell, so `cd`, variables and
`echo $?` carry over), and the lines up to the next `$ ` are what it prints (stdout and
stderr together, as a terminal shows them). In the expected output:

- a line that is only `...` or `…` stands for any number of lines (none included);
- `<hash>` stands for a hex digest or a commit sha (7 to 64 hex digits) and `<time>` for
  a date or time: only what must vary from clone to clone is a placeholder.

Processes a block starts in the background (`&`) are stopped by their PIDs when the
block ends. To check a new example, put the marker on the line above its fence.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

MARKER = "<!-- readme-test -->"
WILDCARDS = ("...", "…")
PLACEHOLDERS = {"<hash>": r"[0-9a-f]{7,64}", "<time>": r"[0-9][0-9:T.Z+-]*[0-9Z]"}
STEP_END = "@@readme-step-end@@"


@dataclass(frozen=True)
class Step:
    command: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    file: str
    line: int
    """The line of the opening fence."""
    steps: tuple[Step, ...]

    @property
    def name(self) -> str:
        return f"{self.file}:{self.line}"


def marked_blocks(path: Path) -> list[Block]:
    """Every marked block of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for index, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = index + 1
        indent = len(lines[fence]) - len(lines[fence].lstrip())
        body: list[str] = []
        for text in lines[fence + 1:]:
            if text.strip().startswith("```"):
                break
            body.append(text[indent:])
        found.append(Block(path.name, fence + 1, _steps(body)))
    return found


def _steps(body: list[str]) -> tuple[Step, ...]:
    steps: list[Step] = []
    command: str | None = None
    expected: list[str] = []
    for text in body:
        if text.startswith("$ "):
            if command is not None:
                steps.append(Step(command, tuple(expected)))
            command, expected = text[2:], []
        elif command is not None:
            expected.append(text)
    if command is not None:
        steps.append(Step(command, tuple(expected)))
    return tuple(steps)


def run_block(block: Block, folder: Path, timeout: float = 600) -> list[str]:
    """Each step's output, run in one bash in `folder`; background jobs stopped at the end."""
    script = ["trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT"]
    for step in block.steps:
        script.append(f"{{ {step.command}\n}} 2>&1; status=$?; echo; echo {STEP_END}; "
                      "(exit $status)")
    result = subprocess.run(["bash", "-c", "\n".join(script)], cwd=folder, text=True,
                            capture_output=True, timeout=timeout, check=False)
    parts = (result.stdout + result.stderr).split(f"\n{STEP_END}\n")
    return [part.removesuffix("\n") for part in parts[:len(block.steps)]]


def pattern(expected: tuple[str, ...]) -> re.Pattern[str]:
    """The output a step's expected lines stand for, as one regular expression."""
    parts = []
    for line in expected:
        if line.strip() in WILDCARDS:
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        text = re.escape(line.rstrip())
        for placeholder, regex in PLACEHOLDERS.items():
            text = text.replace(re.escape(placeholder), regex)
        parts.append(text + r"[ \t]*\n")
    return re.compile("".join(parts))


def matches(expected: tuple[str, ...], output: str) -> bool:
    """Does `output` (the step's lines) read as the README shows it?"""
    text = "\n".join(line.rstrip() for line in output.splitlines()) + "\n" if output else ""
    shown = expected
    while shown and not shown[-1].strip():
        shown = shown[:-1]
    return pattern(shown).fullmatch(text) is not None
