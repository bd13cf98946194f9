"""Kubernetes resource quantities (`500m`, `2Gi`, `1.5`), parsed the way the API server does.

Parsing here, instead of letting the cluster reject a Deployment mid-update,
moves the error to `validate` time, where it can name the line. It also
catches the classic slip `memory: 512m`, which Kubernetes accepts as half a byte.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?[0-9]+)?$"
)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
            "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15),
            "E": Decimal(10**18)}

MEBIBYTE = Decimal(2**20)


class QuantityError(ValueError):
    """The text is not a Kubernetes quantity."""


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a quantity in base units (cores, bytes, devices)."""
    raw = str(text).strip()
    match = _QUANTITY.match(raw)
    if not match:
        raise QuantityError(f"'{raw}' is not a Kubernetes quantity (e.g. 500m, 2, 1.5Gi)")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as error:  # pragma: no cover - the regex admits only decimals
        raise QuantityError(f"'{raw}' is not a number") from error
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if suffix:
        return number * Decimal(10) ** int(suffix[1:])
    return number


def normalize_quantity(value: str | int | float) -> str:
    """The quantity as the text Kubernetes expects (numbers from YAML become strings)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P",
                     18: "E"}
_BINARY_SUFFIXES = [(suffix, factor) for suffix, factor in reversed(_BINARY.items())]


def canonical_quantity(text: str) -> str:
    """The spelling Kubernetes itself stores for a quantity: `1000m` -> `1`, `2048Mi` -> `2Gi`.

    Follows apimachinery's `Quantity.CanonicalizeBytes`: binary suffixes stay binary (the
    largest suffix that leaves a whole number), unless the amount is below 1024 or not a
    whole number of units, which, like decimal suffixes, take the largest power of 1000
    (down to `n`) that leaves a whole number, exponents (`1e3` is `1k`) included; checked
    against what kube-apiserver stores in tests/test_kube_stacks.py.
    Raises `QuantityError` on text that is not a quantity.
    """
    raw = str(text).strip()
    value = parse_quantity(raw)
    suffix = _QUANTITY.match(raw)["suffix"] or ""  # type: ignore[index]
    if value == 0:
        return "0"
    if suffix in _BINARY and value == value.to_integral_value() and abs(value) >= 1024:
        for name, factor in _BINARY_SUFFIXES:
            if value % factor == 0:
                return f"{int(value / factor)}{name}"
        return str(int(value))
    exponent = 18
    while exponent > -9 and (value / Decimal(10) ** exponent) % 1 != 0:
        exponent -= 3
    mantissa = value / Decimal(10) ** exponent
    number = str(int(mantissa)) if mantissa == mantissa.to_integral_value() \
        else format(mantissa.normalize(), "f")
    return number + _DECIMAL_SUFFIXES[exponent]


def cpu_problem(value: str | int | float) -> str | None:
    """Why `value` cannot be a CPU request, or None when it can."""
    try:
        cores = parse_quantity(value)
    except QuantityError as error:
        return str(error)
    if cores <= 0:
        return f"must be more than 0 (got {value})"
    if (cores * 1000) % 1 != 0:
        return f"'{value}' is finer than 1m, the smallest CPU unit Kubernetes accepts"
    return None


def memory_problem(value: str | int | float) -> str | None:
    """Why `value` cannot be a memory request, or None when it can."""
    try:
        amount = parse_quantity(value)
    except QuantityError as error:
        return str(error)
    text = normalize_quantity(value)
    if text.endswith("m"):
        return (f"'{text}' means {amount} bytes (m is milli); "
                f"did you mean '{text[:-1]}Mi'?")
    if amount < MEBIBYTE:
        return f"'{text}' is less than 1Mi; give a unit, e.g. '{text}Mi'"
    return None


def gpu_problem(value: str | int | float) -> str | None:
    """Why `value` cannot be a GPU count, or None when it can."""
    try:
        count = parse_quantity(value)
    except QuantityError as error:
        return str(error)
    if count < 0 or count != count.to_integral_value():
        return f"must be a whole number of GPUs, 0 or more (got {value})"
    return None
