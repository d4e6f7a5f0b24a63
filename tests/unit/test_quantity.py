"""Kubernetes quantities (K8s API "resource.Quantity" grammar and meaning).

Each test names the rule it checks; values are compared exactly (Fractions).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.state.errors import StateError
from agent.state.quantity import (
    Quantity,
    QuantityError,
    cpu_millicores,
    format_cpu,
    format_memory,
    memory_bytes,
    parse_quantity,
)

KI, MI, GI = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Fraction(1, 2)),
        ("0.5", Fraction(1, 2)),
        ("2", Fraction(2)),
        ("128Mi", Fraction(128 * MI)),
        ("1G", Fraction(10**9)),
        ("1e3", Fraction(1000)),
        ("1E3", Fraction(1000)),
        ("+1", Fraction(1)),
        (".5", Fraction(1, 2)),
        ("1.", Fraction(1)),
        ("-1", Fraction(-1)),
        ("0", Fraction(0)),
        ("007", Fraction(7)),
        # decimal SI suffixes
        ("3n", Fraction(3, 10**9)),
        ("3u", Fraction(3, 10**6)),
        ("3m", Fraction(3, 1000)),
        ("3k", Fraction(3000)),
        ("3M", Fraction(3 * 10**6)),
        ("3G", Fraction(3 * 10**9)),
        ("3T", Fraction(3 * 10**12)),
        ("3P", Fraction(3 * 10**15)),
        ("3E", Fraction(3 * 10**18)),
        # binary SI suffixes
        ("3Ki", Fraction(3 * KI)),
        ("3Mi", Fraction(3 * MI)),
        ("3Gi", Fraction(3 * GI)),
        ("3Ti", Fraction(3 * 1024**4)),
        ("3Pi", Fraction(3 * 1024**5)),
        ("3Ei", Fraction(3 * 1024**6)),
        ("1.5Gi", Fraction(3 * GI, 2)),
        # exponent forms
        ("1e-3", Fraction(1, 1000)),
        ("1e+3", Fraction(1000)),
        ("2.5E2", Fraction(250)),
        ("-.5e1", Fraction(-5)),
        # the examples in the Kubernetes documentation
        ("0.1", Fraction(1, 10)),
        ("1Gi", Fraction(1073741824)),
        ("129e6", Fraction(129 * 10**6)),
        ("129M", Fraction(129 * 10**6)),
        ("123Mi", Fraction(123 * MI)),
    ],
)
def test_parses_every_quantity_form_exactly(text, expected):
    """K8s resource.Quantity grammar: sign? number (binarySI | decimalSI | e/E exponent)."""
    q = parse_quantity(text)
    assert q.value == expected
    assert q.text == text
    assert str(q) == text


@pytest.mark.parametrize(
    "text",
    [
        "12Q",
        "1.5.3",
        "Mi",
        "",
        "1e",
        "1E+",
        "1e3.5",
        ".",
        "+",
        "-",
        "1 ",
        " 1",
        "1 Mi",
        "1K",  # kilo is lowercase k
        "1mi",
        "1ki",
        "0.1mi",
        "1i",
        "1Mib",
        "Ki1",
        "1e1000",  # beyond the exponent bound
        "١",  # a non-ASCII digit
        "1\n",
        "x" * 300,
    ],
)
def test_rejects_malformed_quantities(text):
    """K8s resource.Quantity grammar: anything outside it is an error, never a guess."""
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize("raw", [True, False, None, [1], {"a": 1}, float("nan"), float("inf")])
def test_rejects_non_numbers(raw):
    with pytest.raises(QuantityError):
        parse_quantity(raw)


def test_quantity_error_is_a_state_error_and_value_error():
    with pytest.raises(StateError):
        parse_quantity("12Q")
    with pytest.raises(ValueError):
        parse_quantity("12Q")


@pytest.mark.parametrize(
    ("raw", "value", "text"),
    [(2, Fraction(2), "2"), (0.5, Fraction(1, 2), "0.5"), (0.1, Fraction(1, 10), "0.1"), (1e3, Fraction(1000), "1000.0")],
)
def test_accepts_yaml_ints_and_floats_exactly(raw, value, text):
    """A YAML float 0.1 means one tenth, not the binary double nearest to it."""
    q = parse_quantity(raw)
    assert (q.value, q.text) == (value, text)


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("100m", 100), ("0.1", 100), ("1", 1000), ("2.5", 2500), ("1n", 1), ("0.1m", 1), ("1001u", 2), ("0", 0)],
)
def test_cpu_millicores_round_up(text, millicores):
    """K8s: a CPU quantity finer than 1m is rounded up to the next millicore."""
    assert cpu_millicores(parse_quantity(text)) == millicores


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("1Gi", 1073741824), ("1G", 10**9), ("129e6", 129 * 10**6), ("123Mi", 128974848), ("0.5", 1), ("1500m", 2)],
)
def test_memory_bytes_round_up(text, nbytes):
    assert memory_bytes(parse_quantity(text)) == nbytes


@pytest.mark.parametrize(("millicores", "text"), [(500, "500m"), (1000, "1"), (2000, "2"), (1500, "1500m"), (0, "0")])
def test_format_cpu(millicores, text):
    assert format_cpu(millicores) == text


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [(128 * MI, "128Mi"), (GI, "1Gi"), (1536 * KI, "1536Ki"), (1000, "1000"), (0, "0"), (3 * 1024**6, "3Ei")],
)
def test_format_memory(nbytes, text):
    assert format_memory(nbytes) == text


def test_quantity_is_frozen_and_hashable():
    q = parse_quantity("1Gi")
    with pytest.raises(AttributeError):
        q.value = Fraction(1)  # type: ignore[misc]
    assert {q: 1}[Quantity(Fraction(GI), "1Gi")] == 1


@given(st.integers(min_value=0, max_value=10**15))
def test_cpu_format_parse_round_trip(millicores):
    """Property: formatting whole millicores and parsing back is lossless."""
    assert cpu_millicores(parse_quantity(format_cpu(millicores))) == millicores


@given(st.integers(min_value=0, max_value=2**62))
def test_memory_format_parse_round_trip(nbytes):
    """Property: formatting whole bytes and parsing back is lossless."""
    assert memory_bytes(parse_quantity(format_memory(nbytes))) == nbytes


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=6),
    st.sampled_from(["", "m", "k", "M", "Ki", "Mi", "Gi", "e3", "e-2"]),
)
def test_decimal_text_parses_to_its_exact_value(digits, scale, suffix):
    """Property: "<int>.<frac><suffix>" means exactly int.frac times the suffix's factor."""
    number = Fraction(digits, 10**scale)
    text = str(digits).rjust(scale + 1, "0")
    if scale:
        text = f"{text[:-scale]}.{text[-scale:]}"
    factor = {"": 1, "m": Fraction(1, 1000), "k": 1000, "M": 10**6, "Ki": KI, "Mi": MI, "Gi": GI,
              "e3": 1000, "e-2": Fraction(1, 100)}[suffix]
    assert parse_quantity(text + suffix).value == number * factor
