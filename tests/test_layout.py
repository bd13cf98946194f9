"""The registry layout has one definition; the model server image carries an identical copy."""

from __future__ import annotations

from modelfleet.release import layout
from tests.conftest import PROJECT


def test_the_model_servers_copy_of_the_layout_is_identical() -> None:
    original = (PROJECT / "modelfleet/release/layout.py").read_bytes()
    copy = (PROJECT / "images/modelserver/layout.py").read_bytes()
    assert copy == original, "copy modelfleet/release/layout.py to images/modelserver/layout.py"


def test_keys_read_back_as_what_they_were_written_from() -> None:
    assert layout.parse_metadata_key(layout.metadata_key("fraud", "1.4.2")) == ("fraud", "1.4.2")
    assert layout.parse_metadata_key("models/fraud/1.4.2/artifact/metadata.json") is None
    assert layout.part_index(layout.part_name(7)) == 7
    assert layout.part_index(layout.SUCCESS_NAME) is None
    assert layout.part_key("churn", "nightly", 3).startswith(layout.run_prefix("churn", "nightly"))
    assert layout.success_key("churn", "nightly").startswith(layout.outputs_prefix("churn"))


def test_the_model_servers_copy_of_the_pinned_fetch_is_identical() -> None:
    original = (PROJECT / "modelfleet/release/pinned.py").read_bytes()
    copy = (PROJECT / "images/modelserver/pinned.py").read_bytes()
    assert copy == original, "copy modelfleet/release/pinned.py to images/modelserver/pinned.py"
