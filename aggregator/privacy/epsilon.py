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
    text = None if isinstance(value, Fraction) else str(value).strip()
    try:
        if text is None:
            return _checked(value, bounded, minimum, maximum)
        # The same few texts come again and again (every marginal of every bundle): their checked value is cached,
        # keyed by plain integers (hashing a Fraction is slow).
        key = (text, bounded, minimum.numerator, minimum.denominator, maximum.numerator, maximum.denominator)
        number = _CHECKED.get(key)
        if number is None:
            number = _checked_text(text, bounded, minimum, maximum)
            if len(_CHECKED) < _CHECKED_SIZE:
                _CHECKED[key] = number
        return number
    except _Refused as refused:
        exc = error(refused.message(what, text or "", minimum, maximum))
        if refused.kind == "not-finite" and isinstance(exc, (InvalidOperation, ValueError, ZeroDivisionError)):
            exc = error(_Refused("not-a-number").message(what, text or "", minimum, maximum))  # as it always read
        raise exc from None


class _Refused(Exception):
    """Why parse_epsilon refuses a value; it raises the caller's error with `message` instead."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def message(self, what: str, text: str, minimum: Fraction, maximum: Fraction) -> str:
        return {
            "not-finite": f"{what} must be a finite number, not {text[:40]!r}",
            "not-a-number": f"{what} must be a positive number such as 1.0 or 1/2, not {text[:40]!r}",
            "not-positive": f"{what} must be greater than zero",
            "below": f"{what} below {minimum} adds so much noise that the release is useless; refused",
            "above": f"{what} above {maximum} gives no meaningful protection; refused",
        }[self.kind]


_CHECKED: dict[tuple[str, bool, int, int, int, int], Fraction] = {}  # accepted values only
_CHECKED_SIZE = 4096


def _checked_text(text: str, bounded: bool, minimum: Fraction, maximum: Fraction) -> Fraction:
    """The exact value of a stripped text, checked (a refusal raises _Refused)."""
    try:
        if "/" in text:
            number = Fraction(text)
        else:
            dec = Decimal(text)
            if not dec.is_finite():
                raise _Refused("not-finite")
            number = Fraction(dec)
    except (InvalidOperation, ValueError, ZeroDivisionError):
        raise _Refused("not-a-number") from None
    return _checked(number, bounded, minimum, maximum)


def _checked(number: Fraction, bounded: bool, minimum: Fraction, maximum: Fraction) -> Fraction:
    if number <= 0:
        raise _Refused("not-positive")
    if bounded and number < minimum:
        raise _Refused("below")
    if bounded and number > maximum:
        raise _Refused("above")
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
