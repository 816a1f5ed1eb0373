"""Kubernetes memory quantities ("16Gi", "512Mi", "1G", ".5Gi", "2e3"), read by the Kubernetes client's
own parser so app.yaml, the remediations and the sandbox cluster agree with each other on every one."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

_LARGEST = 2**63 - 1  # Kubernetes keeps a quantity in an int64


def parse_memory(quantity: str) -> int:
    """Bytes in a Kubernetes memory quantity, rounded up to a whole byte as Kubernetes does."""
    # Imported here: the client package takes half a second to import, and loading app.yaml rarely needs it.
    from kubernetes.utils.quantity import parse_quantity

    text = str(quantity).strip()
    try:
        # The Decimal under parse_quantity would also take "1 Gi", "1_000" and digits of other scripts.
        if not text.isascii() or "_" in text or any(c.isspace() for c in text):
            raise ValueError(text)
        size: Decimal = parse_quantity(text)  # type: ignore[no-untyped-call]
    except ValueError:
        raise ValueError(f"not a memory quantity: {quantity!r}") from None
    if not size.is_finite() or not 0 <= size <= _LARGEST:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return math.ceil(size)


def _memory_quantity(value: str) -> str:
    try:
        parse_memory(value)
    except ValueError:
        raise PydanticCustomError(
            "format", "must be a Kubernetes memory quantity like '16Gi' or '512Mi'"
        ) from None
    return value


MemoryQuantity = Annotated[str, AfterValidator(_memory_quantity)]
