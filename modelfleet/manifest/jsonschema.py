"""The JSON Schema of the manifest, for editors (`yaml-language-server`) and other tools.

It is generated from the same classes that validate the manifest, and checked
in at `schema/manifest.schema.json`; a test fails when the two drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from modelfleet.manifest.schema import ManifestDocument

SCHEMA_PATH = "schema/manifest.schema.json"
SCHEMA_ID = "https://modelfleet.dev/schema/manifest.schema.json"


def manifest_schema() -> dict[str, Any]:
    schema = ManifestDocument.model_json_schema(by_alias=True, mode="validation")
    _drop_titles(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "modelfleet model manifest (modelfleet/v1)",
        **schema,
    }


def _drop_titles(node: Any) -> None:
    """Pydantic titles every field after its Python name; the descriptions say more."""
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for value in properties.values():
                if isinstance(value, dict):
                    value.pop("title", None)
        for value in node.values():
            _drop_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_titles(value)


def schema_text() -> str:
    return json.dumps(manifest_schema(), indent=2, sort_keys=True) + "\n"
