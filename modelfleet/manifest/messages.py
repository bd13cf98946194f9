"""Pydantic's validation errors rewritten as messages a manifest author can act on."""

from __future__ import annotations

import difflib
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

_TYPE_NAMES = {
    "int_type": "a whole number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "list_type": "a list",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "float_type": "a number",
}


def describe(value: Any) -> str:
    """How YAML read `value`: the usual source of confusion is `3.10` read as 3.1."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()}, which YAML reads as a boolean"
    if isinstance(value, (int, float)):
        return f"{value}, which YAML reads as a number"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def error_message(error: ErrorDetails, root: type[BaseModel]) -> str:
    """One sentence for one pydantic error; `root` is the class the data was checked against."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        allowed = allowed_keys(root, error["loc"][:-1])
        hint = difflib.get_close_matches(key, allowed, n=1)
        text = f"unknown key '{key}'"
        if hint:
            return f"{text}; did you mean '{hint[0]}'?"
        return f"{text}; allowed here: {', '.join(allowed)}" if allowed else text
    if kind in _TYPE_NAMES:
        expected = _TYPE_NAMES[kind]
        message = f"must be {expected}, got {describe(value)}"
        if kind == "string_type" and isinstance(value, (int, float, bool)):
            message += "; put it in quotes"
        return message
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '')}, got {describe(value)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {"greater_than_equal": "at least", "greater_than": "more than",
                 "less_than_equal": "at most", "less_than": "less than"}[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {words} {bound}, got {value}"
    if kind == "modelfleet":
        return str(ctx.get("reason", error["msg"]))
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {describe(value)}"


def allowed_keys(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the manifest may write at `loc`, found by walking the classes."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_key(current, str(part))
            if field is None:
                return []
            current = field
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """`Serving | None` -> `Serving`; `Annotated[X, ...]` -> `X`."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) not in (list, dict) and len(args) == 1:
        return _unwrap(args[0])
    return annotation
