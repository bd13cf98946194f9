"""The checked-in JSON Schema matches the code, and accepts what validation accepts."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from modelfleet.manifest.jsonschema import SCHEMA_PATH, manifest_schema, schema_text
from tests.conftest import PROJECT


def test_checked_in_schema_is_up_to_date() -> None:
    committed = (PROJECT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert committed == schema_text(), (
        f"{SCHEMA_PATH} is stale: run `python -m modelfleet schema --write` and commit it")


def test_schema_is_valid_json_schema_and_accepts_the_example_manifest() -> None:
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    example = yaml.safe_load((PROJECT / "models.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(example)


@pytest.mark.parametrize(("path", "value"), [
    (("models", 0, "serving", "replica"), 3),
    (("models", 0, "environments", "prod", "serving", "port"), 80),
    (("models", 0, "version"), "v1"),
    (("defaults", "batch", "maxWorkers"), 0),
    (("apiVersion",), "modelfleet/v2"),
])
def test_schema_rejects_what_validation_rejects(path: tuple[str | int, ...], value: object) -> None:
    example = yaml.safe_load((PROJECT / "models.yaml").read_text(encoding="utf-8"))
    target = example
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(part, str) else target[part]
    target[path[-1]] = value
    errors = list(jsonschema.Draft202012Validator(manifest_schema()).iter_errors(example))
    assert errors, json.dumps(path)
