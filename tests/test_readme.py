"""The README's marked examples run on a fresh clone and print what the README shows.

See `tests/readme_blocks.py` for the format. Each block gets a clone of its own (the
committed project, no tags, as `git clone` of a branch gives), with the project's venv.
"""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from tests.conftest import PROJECT
from tests.readme_blocks import Block, marked_blocks, matches, run_block

BLOCKS = marked_blocks(PROJECT / "README.md")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    folder = tmp_path / "modelfleet"
    git.Repo.clone_from(PROJECT, folder, no_tags=True)
    (folder / "venv").symlink_to(PROJECT / "venv")
    return folder


def test_the_readme_has_checked_examples() -> None:
    assert len(BLOCKS) >= 4
    assert all(block.steps for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_a_readme_example_prints_what_the_readme_shows(clone: Path, block: Block) -> None:
    outputs = run_block(block, clone)
    for step, output in zip(block.steps, outputs, strict=True):
        assert matches(step.expected, output), (
            f"{block.name}: `$ {step.command}` printed:\n{output}\n--- the README shows:\n"
            + "\n".join(step.expected))
