"""Kubernetes resource quantities ("500m", "128Mi", "1e3"), kept exact.

Owns: parsing a quantity exactly as Kubernetes reads it, converting to whole
millicores / bytes, and formatting those back into short canonical text.

Rules:
- Grammar (Kubernetes `resource.Quantity`):
      quantity  ::= sign? number suffix
      number    ::= digits | digits "." digits? | "." digits
      suffix    ::= binary | decimal | ("e" | "E") sign? digits
      binary    ::= Ki Mi Gi Ti Pi Ei          (powers of 1024)
      decimal   ::= n u m "" k M G T P E       (powers of 1000)
  No spaces, no other suffixes ("K", "mi", "Q"), no number-less text ("Mi").
- The value is an exact Fraction: "0.1" is exactly 1/10, never a binary float.
- A negative quantity parses (Kubernetes allows it); callers that need a size, such
  as resource requests, reject it themselves.
- Converting to millicores or bytes rounds UP, as Kubernetes does: "0.1m" is 1m.
- Exponents are bounded (|e| <= 100) and text is at most 256 characters, so hostile
  input cannot make the parser build astronomically large numbers.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from agent.state.errors import StateError

MAX_TEXT_CHARS = 256  # far beyond any real quantity; bounds work done on hostile text
MAX_EXPONENT = 100  # 1e100 bytes is already absurd; bounds the size of the Fraction

_BINARY_SUFFIXES = {
    "Ki": 1024**1,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "Pi": 1024**5,
    "Ei": 1024**6,
}
_DECIMAL_SUFFIXES = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
# sign, then digits with an optional fraction part, or a bare fraction part; the rest is the suffix.
_NUMBER_AND_SUFFIX = re.compile(
    r"(?P<sign>[+-]?)(?:(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]*))?|\.(?P<bare_frac>[0-9]+))(?P<suffix>.*)",
    re.DOTALL,
)
_EXPONENT_SUFFIX = re.compile(r"[eE](?P<exp>[+-]?[0-9]+)")


class QuantityError(StateError, ValueError):
    """Text that is not a Kubernetes quantity."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact quantity and the text it was written as (kept for faithful round trips)."""

    value: Fraction
    text: str

    def __str__(self) -> str:
        return self.text


def parse_quantity(raw: str | int | float) -> Quantity:
    """Parse a quantity written as text, or as a YAML int/float. Raises QuantityError."""
    if isinstance(raw, bool):  # bool is an int subclass; `true` is never a size
        raise QuantityError(f"{raw!r} is not a quantity: a boolean")
    if isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise QuantityError(f"{raw!r} is not a quantity: not a finite number")
        text = repr(raw)  # shortest text that reads back as this float: 0.1 -> "0.1"
    elif isinstance(raw, str):
        text = raw
    else:
        raise QuantityError(f"{raw!r} is not a quantity: a {type(raw).__name__}")
    return Quantity(value=_parse_text(text), text=text)


def _parse_text(text: str) -> Fraction:
    if not text:
        raise QuantityError('"" is not a quantity: empty')
    if len(text) > MAX_TEXT_CHARS:
        raise QuantityError(f"quantity text is longer than {MAX_TEXT_CHARS} characters")
    match = _NUMBER_AND_SUFFIX.fullmatch(text)
    if match is None:
        raise QuantityError(f"{text!r} is not a quantity: no number")
    if match["bare_frac"] is not None:
        whole, frac = "0", match["bare_frac"]
    else:
        whole, frac = match["whole"], match["frac"] or ""
    number = Fraction(int(whole + frac), 10 ** len(frac))
    if match["sign"] == "-":
        number = -number
    return number * _suffix_multiplier(text, match["suffix"])


def _suffix_multiplier(text: str, suffix: str) -> Fraction:
    if suffix in _BINARY_SUFFIXES:
        return Fraction(_BINARY_SUFFIXES[suffix])
    if suffix in _DECIMAL_SUFFIXES:
        return _DECIMAL_SUFFIXES[suffix]
    exponent_match = _EXPONENT_SUFFIX.fullmatch(suffix)
    if exponent_match is None:
        raise QuantityError(f"{text!r} is not a quantity: unknown suffix {suffix!r}")
    exponent = int(exponent_match["exp"])
    if abs(exponent) > MAX_EXPONENT:
        raise QuantityError(f"{text!r} is not a quantity: exponent beyond +/-{MAX_EXPONENT}")
    return Fraction(10) ** exponent


def cpu_millicores(q: Quantity) -> int:
    """Whole millicores, rounded up ("0.1" -> 100, "1n" -> 1)."""
    return math.ceil(q.value * 1000)


def memory_bytes(q: Quantity) -> int:
    """Whole bytes, rounded up ("1Ki" -> 1024, "0.5" -> 1)."""
    return math.ceil(q.value)


def format_cpu(millicores: int) -> str:
    """Short canonical CPU text: 2000 -> "2", 500 -> "500m"."""
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_memory(nbytes: int) -> str:
    """Short canonical memory text with the largest exact binary suffix: 134217728 -> "128Mi"."""
    if nbytes != 0:
        for suffix, factor in reversed(_BINARY_SUFFIXES.items()):
            if nbytes % factor == 0:
                return f"{nbytes // factor}{suffix}"
    return str(nbytes)
