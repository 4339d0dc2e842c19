"""Go durations (``168h``, ``1h30m``, ``1.5s``, ``300ms``): parsing, rendering, and the
``Duration`` field type of the configuration model."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Final

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_NS_PER_UNIT: Final[Mapping[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_MAX_DURATION_NS: Final = 2**63 - 1  # Go's time.Duration is an int64 count of nanoseconds
_NS_PER_US: Final = 1_000
_US_PER_S: Final = 1_000_000


def _is_ascii_digit(char: str) -> bool:
    return "0" <= char <= "9"


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration string (``time.ParseDuration`` syntax) into a timedelta.

    A duration is an optionally signed sequence of decimal numbers, each with an
    optional fraction and a unit: ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h``.
    ``"0"`` needs no unit. Precision below a microsecond is truncated.
    Raises ValueError on anything else.
    """
    rest = text
    negative = False
    if rest[:1] in ("+", "-"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total_ns = 0
    i = 0
    while i < len(rest):
        start = i
        while i < len(rest) and _is_ascii_digit(rest[i]):
            i += 1
        whole = rest[start:i]
        fraction = ""
        if i < len(rest) and rest[i] == ".":
            i += 1
            fraction_start = i
            while i < len(rest) and _is_ascii_digit(rest[i]):
                i += 1
            fraction = rest[fraction_start:i]
        if not whole and not fraction:
            raise ValueError(f"invalid duration {text!r}: expected a number at {rest[start:]!r}")
        unit_start = i
        while i < len(rest) and rest[i] != "." and not _is_ascii_digit(rest[i]):
            i += 1
        unit = rest[unit_start:i]
        if not unit:
            raise ValueError(f"invalid duration {text!r}: missing unit (ns, us, ms, s, m or h)")
        scale = _NS_PER_UNIT.get(unit)
        if scale is None:
            raise ValueError(f"invalid duration {text!r}: unknown unit {unit!r}")
        if len(whole.lstrip("0")) > 20:
            raise ValueError(f"invalid duration {text!r}: out of range")
        total_ns += int(whole or "0") * scale
        fraction = fraction[:20]  # further digits are far below a nanosecond
        if fraction:
            total_ns += int(fraction) * scale // 10 ** len(fraction)
        if total_ns > _MAX_DURATION_NS + (1 if negative else 0):
            raise ValueError(f"invalid duration {text!r}: out of range")
    result = timedelta(microseconds=total_ns // _NS_PER_US)
    return -result if negative else result


def format_duration(value: timedelta) -> str:
    """Render a timedelta in Go duration syntax, e.g. ``168h``, ``1h30m``, ``1.5s``, ``250ms``."""
    if value < timedelta(0):
        return "-" + format_duration(-value)
    micros_total = (value.days * 86_400 + value.seconds) * _US_PER_S + value.microseconds
    if micros_total == 0:
        return "0s"
    hours, remainder = divmod(micros_total, 3600 * _US_PER_S)
    minutes, remainder = divmod(remainder, 60 * _US_PER_S)
    seconds, micros = divmod(remainder, _US_PER_S)
    parts: list[str] = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if not hours and not minutes and not seconds:
        parts.append(f"{micros // 1000}ms" if micros % 1000 == 0 else f"{micros}us")
    elif micros:
        parts.append(f"{seconds}.{micros:06d}".rstrip("0") + "s")
    elif seconds:
        parts.append(f"{seconds}s")
    return "".join(parts)


def _to_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '10s'")
    if isinstance(value, int | float):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"a duration needs a unit, e.g. '{value}s'")
    if isinstance(value, str):
        return parse_duration(value.strip())
    return value  # pydantic reports the type error


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("a duration must not be negative")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    AfterValidator(_not_negative),
    PlainSerializer(format_duration, return_type=str),
]


def longer_than_zero(value: timedelta) -> timedelta:
    """A validator for durations that must not be zero (intervals)."""
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


# An interval: a duration longer than zero.
PositiveDuration = Annotated[Duration, AfterValidator(longer_than_zero)]
