"""Batch input and output: rows from JSON lines or CSV, predictions as JSON lines."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class RecordError(ValueError):
    """An input object that cannot be read as rows of numbers."""


@dataclass(frozen=True)
class Row:
    key: Any
    """The row's `id` when the input gives one, else its position."""
    features: list[float]


def parse_rows(data: bytes, name: str) -> list[Row]:
    """JSON lines (`[1, 2]` or `{"id": .., "features": [..]}`) or CSV, by name or content."""
    text = data.decode("utf-8", errors="strict")
    if name.endswith(".csv") or (not name.endswith((".jsonl", ".json", ".ndjson"))
                                 and not text.lstrip().startswith(("[", "{"))):
        return list(_csv_rows(text, name))
    return [_json_row(line, index, name) for index, line in enumerate(
        line for line in text.splitlines() if line.strip())]


def _json_row(line: str, index: int, name: str) -> Row:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise RecordError(f"{name}: line {index + 1} is not JSON: {error.msg}") from error
    if isinstance(value, dict):
        features = value.get("features", value.get("inputs"))
        key = value.get("id", index)
    else:
        features, key = value, index
    return Row(key, _numbers(features, f"{name}: line {index + 1}"))


def _csv_rows(text: str, name: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text))
    for index, record in enumerate(reader):
        if not record:
            continue
        try:
            yield Row(index, [float(cell) for cell in record])
        except ValueError as error:
            if index == 0:
                continue  # a header
            raise RecordError(f"{name}: row {index + 1} is not numeric: {error}") from error


def _numbers(values: Any, where: str) -> list[float]:
    if not isinstance(values, list) or not values:
        raise RecordError(f"{where}: expected a list of numbers")
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError) as error:
        raise RecordError(f"{where}: expected numbers: {error}") from error


def as_matrix(rows: Sequence[Row]) -> np.ndarray:
    widths = {len(row.features) for row in rows}
    if len(widths) > 1:
        raise RecordError(f"rows have different numbers of features: {sorted(widths)}")
    return np.asarray([row.features for row in rows], dtype=np.float64)


def batches(rows: Sequence[Row], size: int) -> Iterator[Sequence[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def prediction_lines(rows: Sequence[Row], outputs: dict[str, np.ndarray]) -> list[str]:
    """One JSON line per row: its key and each output's value for it."""
    lines = []
    for index, row in enumerate(rows):
        record: dict[str, Any] = {"id": row.key}
        for output, values in outputs.items():
            value = values[index]
            record[output] = value.tolist() if hasattr(value, "tolist") else value
        lines.append(json.dumps(record, separators=(",", ":")))
    return lines
