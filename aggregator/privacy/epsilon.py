"""Exact epsilon: one parser, exact and decimal renderings. Never a float sum."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext
from fractions import Fraction
from typing import Callable

from ..errors import UsageError

DEFAULT_CAP = Fraction(1)
MAX_EPSILON = Fraction(100)
MIN_EPSILON = Fraction(1, 10**6)
PRIVACY_UNIT = "one person at one organisation in one reporting period (calendar year)"


def parse_epsilon(
    value: str | int | Fraction | Decimal,
    *,
    what: str = "epsilon",
    error: Callable[[str], Exception] = UsageError,
    bounded: bool = True,
    minimum: Fraction = MIN_EPSILON,
    maximum: Fraction = MAX_EPSILON,
) -> Fraction:
    """The one epsilon parser: exact from text ("1", "0.5", "1/7"), never through a float.

    NaN, infinity, zero and negatives are refused; `bounded` also refuses values below `minimum` (default
    MIN_EPSILON: useless noise) and above `maximum` (default MAX_EPSILON: no protection), as a new release must be. `error` builds the exception to raise, so the
    same rules give a usage error on the command line and a refusal inside a bundle."""
    if isinstance(value, float):
        raise error(f"{what} must be given as text or an exact number, not a float")
    if isinstance(value, Fraction):
        number = value
    else:
        text = str(value).strip()
        try:
            if "/" in text:
                number = Fraction(text)
            else:
                dec = Decimal(text)
                if not dec.is_finite():
                    raise error(f"{what} must be a finite number, not {text[:40]!r}")
                number = Fraction(dec)
        except (InvalidOperation, ValueError, ZeroDivisionError):
            raise error(f"{what} must be a positive number such as 1.0 or 1/2, not {text[:40]!r}") from None
    if number <= 0:
        raise error(f"{what} must be greater than zero")
    if bounded and number < minimum:
        raise error(f"{what} below {minimum} adds so much noise that the release is useless; refused")
    if bounded and number > maximum:
        raise error(f"{what} above {maximum} gives no meaningful protection; refused")
    return number


def exact_text(value: Fraction) -> str:
    """Fraction as the bundle's exact text: "1", "1/7", "3/10"."""
    return str(value)


def decimal_text(value: Fraction, places: int = 6) -> str:
    """Decimal rendering of an exact fraction for people (rounded half-even at `places`), never through a float."""
    with localcontext() as ctx:
        ctx.prec = 50
        number = Decimal(value.numerator) / Decimal(value.denominator)
        return format(number.quantize(Decimal(1).scaleb(-places)).normalize(), "f")
