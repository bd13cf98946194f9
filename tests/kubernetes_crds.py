"""Validation of custom resources against the CRD schemas their projects publish.

The shipped schemas are KEDA's (tests/schemas/keda, with their source cited) and the Gateway
API Inference Extension's InferencePool (tests/schemas/gateway-api-inference-extension, from
kubernetes-sigs/gateway-api-inference-extension v1.6.0 `config/crd/bases`).
Like the API server with strict field validation, an unknown field is an error:
every object schema that lists its properties, and does not declare itself open,
is closed here.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).parent / "schemas"


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of that version."""
    found = {}
    for path in sorted(SCHEMAS.rglob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            found[(f"{group}/{version['name']}", kind)] = closed(schema)
    return found


def closed(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {key: closed(value) for key, value in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    return schema


def custom_resource_errors(obj: dict[str, Any]) -> list[str]:
    schema = crd_schemas().get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        return [f"no CRD schema shipped for {obj['apiVersion']} {obj['kind']}"]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(object)'}: {e.message}"
            for e in validator.iter_errors(obj)]
