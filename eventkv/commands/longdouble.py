"""INCRBYFLOAT's arithmetic as Redis does it: x87 80-bit ``long double``, exactly.

Redis reads the value and the increment with ``strtold``, adds them as ``long
double`` (a 64-bit significand) and writes the sum with ``"%.17Lf"``, trailing
zeros removed.  A Python ``float`` has a 53-bit significand, so ``10.5 + 0.1``
would be written ``10.6`` by both, but ``0.1 + 0.2`` would be
``0.30000000000000004`` instead of Redis's ``0.3``, and integers above 2**53
would lose their last digits.  Here every value is an exact ``Fraction``,
rounded to the nearest ``long double`` (ties to even) after each step, as the
hardware rounds, so the text written is Redis's to the byte.

>>> add_text("10.50", "0.1")
'10.6'
>>> add_text("0.1", "0.2")
'0.3'
>>> add_text("5.0e3", "2.0e2")
'5200'
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

#: ``long double`` (x87 extended precision): significand bits, least normal and greatest exponents
MANTISSA = 64
MIN_EXP = -16382
MAX_EXP = 16383
#: Redis's MAX_LONG_DOUBLE_CHARS: longer input is refused, and no output is longer
MAX_CHARS = 5 * 1024

_DECIMAL = re.compile(r"([+-]?)(?:(\d+)\.?(\d*)|\.(\d+))(?:[eE]([+-]?\d+))?")
_HEX = re.compile(r"([+-]?)0[xX](?:([0-9a-fA-F]+)\.?([0-9a-fA-F]*)|\.([0-9a-fA-F]+))(?:[pP]([+-]?\d+))?")
_INFINITY = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)


class Infinite(ValueError):
    """The result is infinite (INCRBYFLOAT's "would produce NaN or Infinity")."""


def parse(text: str) -> Fraction | float | None:
    """The ``long double`` that Redis's ``string2ld`` reads from ``text``: a ``Fraction``, an
    infinite ``float`` (``inf``, ``-infinity``...), or None if it refuses the text.

    As ``strtold``: decimal or hexadecimal (``0x1p4``) notation, an optional sign,
    no surrounding spaces, nothing after the number.  NaN, overflow and underflow
    to zero are refused.
    """
    if not text or len(text) >= MAX_CHARS or not text.isascii():
        return None
    m = _DECIMAL.fullmatch(text)
    base = 10
    if not m:
        m = _HEX.fullmatch(text)
        base = 2
        if not m:
            return float(text) if _INFINITY.fullmatch(text) else None
    sign, whole, frac, only_frac, exp = m.groups()
    if whole is None:
        whole, frac = "", only_frac
    # mantissa * base ** shift; a hexadecimal digit is four bits.  (Decimal: int() of a long
    # digit string would hit Python's limit on integer string conversion.)
    digits = (whole + frac).lstrip("0")
    if not digits:
        return Fraction(0)
    mantissa = int(digits, 16) if base == 2 else int(Decimal(digits))
    shift = int(exp or 0) - len(frac) * (4 if base == 2 else 1)
    # 2**low <= |value| < 2**high, to refuse what overflows or underflows before building
    # it: 10 ** shift of an absurd shift would not end.
    high: float
    low: float
    if base == 2:
        high = mantissa.bit_length() + shift
        low = high - 1
    else:
        high = (len(digits) + shift) * math.log2(10) + 1
        low = (len(digits) + shift - 1) * math.log2(10) - 1
    if low > MAX_EXP + 1:
        return None  # overflow: strtold's ERANGE with HUGE_VALL
    if high < MIN_EXP - MANTISSA - 1:
        return None  # underflow to zero: ERANGE
    value = mantissa * Fraction(base) ** shift
    try:
        rounded = round_ld(-value if sign == "-" else value)
    except Infinite:
        return None
    return None if rounded == 0 else rounded


def round_ld(value: Fraction) -> Fraction:
    """``value`` rounded to the nearest ``long double`` (ties to even); ``Infinite`` if it overflows."""
    if value == 0:
        return value
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:  # make 2**exponent <= magnitude < 2**(exponent + 1)
        exponent -= 1
    quantum = Fraction(2) ** (max(exponent, MIN_EXP) - MANTISSA + 1)  # subnormals keep the least normal's step
    rounded = round(magnitude / quantum) * quantum  # round() of a Fraction: to the nearest, ties to even
    if rounded >= Fraction(2) ** (MAX_EXP + 1):
        raise Infinite("overflow")
    return rounded if value > 0 else -rounded


def format_human(value: Fraction) -> str:
    """``"%.17Lf"`` of a ``long double``, trailing zeros (and a trailing point) removed, ``-0`` as ``0``."""
    scaled = round(abs(value) * 10**17)  # the exact value rounded to 17 decimals, ties to even (as glibc)
    digits = format(Decimal(scaled), "f").rjust(18, "0")  # Decimal: no limit on the digits of a long integer
    text = (digits[:-17] + "." + digits[-17:]).rstrip("0").rstrip(".")
    return "-" + text if value < 0 and text != "0" else text


def add_text(current: str, increment: str) -> str:
    """The text INCRBYFLOAT stores: ``current + increment`` as ``long double``.

    ``ValueError`` if either is not a number Redis reads; ``Infinite`` if either is
    infinite or the sum overflows.
    """
    a, b = parse(current), parse(increment)
    if a is None or b is None:
        raise ValueError("not a long double")
    if isinstance(a, float) or isinstance(b, float):
        raise Infinite("an infinite operand")
    return format_human(round_ld(a + b))
