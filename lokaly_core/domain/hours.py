"""A store's opening hours: a weekly schedule in the store's own time zone, and its pause.

``opening_hours`` (docs/api.md) maps weekdays ``mon`` ... ``sun`` to lists of
``["HH:MM", "HH:MM"]`` intervals of local wall-clock time, half-open (open from the first
minute, closed from the second). An interval whose end is not after its start runs past
midnight and belongs to the day it starts: ``"sat": [["22:00", "02:00"]]`` is open from
Saturday 22:00 to Sunday 02:00 (and ``"sun": [["22:00", "02:00"]]`` into Monday). A weekday
left out is closed all day; ``None`` instead of a schedule is open at all hours.

Wall-clock time decides, also across DST changes: on the night the clocks go forward,
an interval covering the skipped hour is open on both sides of it, and one that lies
wholly inside the skipped hour is never open that night; on the night they go back, an
interval covering the repeated hour is open during both passes of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MAX_INTERVALS_PER_DAY = 10
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_TRANSITION_PRECISION = timedelta(seconds=1)


class InvalidHours(ValueError):
    """An opening-hours value or time zone that is not valid; ``messages`` say why."""

    def __init__(self, messages: Sequence[str]):
        self.messages = list(messages)
        super().__init__("; ".join(self.messages))


@dataclass(frozen=True, slots=True)
class Interval:
    """``start`` to ``end`` in minutes after local midnight; ``end <= start`` runs past it."""

    start: int
    end: int

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def as_json(self) -> list[str]:
        return [_format(self.start), _format(self.end)]


# Weekday index (Monday 0, as ``date.weekday()``) -> that day's intervals, by start.
WeeklyHours = tuple[tuple[Interval, ...], ...]


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ``InvalidHours`` when there is none by that name."""
    if not isinstance(name, str) or not name or name != name.strip() or ".." in name:
        raise InvalidHours(["Use an IANA time zone name, e.g. Europe/Amsterdam."])
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidHours([f"{name!r} is not an IANA time zone name."]) from exc


def parse_hours(raw: Any) -> WeeklyHours | None:
    """Validate ``opening_hours`` as the API takes it; ``InvalidHours`` lists every problem.

    ``None`` is always open. Each weekday's intervals are ``"HH:MM"`` 00:00 to 23:59, start
    and end different, and no two intervals of the week overlap (counting those that run
    past midnight into the next day, Sunday's into Monday).
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidHours(['An object of weekdays ("mon" ... "sun") to lists of intervals.'])
    problems: list[str] = []
    unknown = sorted(str(k) for k in raw if k not in WEEKDAYS)
    if unknown:
        problems.append(f"Unknown weekday keys: {', '.join(unknown)}; use mon ... sun.")
    days: list[tuple[Interval, ...]] = []
    for day in WEEKDAYS:
        days.append(tuple(sorted(_parse_day(day, raw.get(day, []), problems), key=_by_start)))
    if not problems:
        problems.extend(_overlaps(days))
    if problems:
        raise InvalidHours(problems)
    return tuple(days)


def hours_from_json(raw: Any) -> WeeklyHours | None:
    """A stored schedule (validated when it was written) as ``WeeklyHours``."""
    return parse_hours(raw)


def hours_as_json(hours: WeeklyHours | None) -> dict[str, list[list[str]]] | None:
    """``hours`` as the API shows and stores it: every weekday, each interval by start."""
    if hours is None:
        return None
    return {day: [i.as_json() for i in hours[n]] for n, day in enumerate(WEEKDAYS)}


@dataclass(frozen=True, slots=True)
class StoreHours:
    """When a store takes orders: its schedule in its time zone, unless staff paused it."""

    timezone: tzinfo = UTC
    hours: WeeklyHours | None = None
    accepting_orders: bool = True

    def is_open(self, now: datetime) -> bool:
        """Open at ``now`` (an aware datetime): accepting orders and inside an interval."""
        return self.accepting_orders and self._scheduled(now)

    def next_opening_at(self, now: datetime) -> datetime | None:
        """The first instant at or after ``now`` at which the store is open (``now`` when it
        is), in UTC; None when it never opens by itself (paused, or no interval at all)."""
        if not self.accepting_orders:
            return None
        if self.is_open(now):
            return now.astimezone(UTC)
        if self.hours is None or not any(self.hours):
            return None
        horizon = now + timedelta(days=8)  # a week and the night past its end
        for candidate in sorted(self._candidates(now, horizon)):
            if candidate >= now and self._scheduled(candidate):
                return candidate.astimezone(UTC)
        return None

    def _scheduled(self, now: datetime) -> bool:
        if self.hours is None:
            return True
        local = now.astimezone(UTC).astimezone(self.timezone)  # a real instant, then local
        minute = local.hour * 60 + local.minute
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        for interval in self.hours[today]:
            if interval.start <= minute and (interval.overnight or minute < interval.end):
                return True
        return any(i.overnight and minute < i.end for i in self.hours[yesterday])

    def _candidates(self, now: datetime, horizon: datetime) -> list[datetime]:
        """Where a closed store may open: each interval's start on each local day from
        yesterday to the horizon, and each UTC offset change (on the night the clocks go
        forward, a start inside the skipped hour opens when the clocks jump)."""
        assert self.hours is not None
        first = now.astimezone(self.timezone).date() - timedelta(days=1)
        out: list[datetime] = []
        for offset in range(10):
            day = first + timedelta(days=offset)
            for interval in self.hours[day.weekday()]:
                out.append(_at(day, interval.start, self.timezone))
        out.extend(_offset_changes(self.timezone, now, horizon))
        return out


def _parse_day(day: str, raw: Any, problems: list[str]) -> list[Interval]:
    if not isinstance(raw, list):
        problems.append(f'{day}: a list of ["HH:MM", "HH:MM"] intervals.')
        return []
    if len(raw) > MAX_INTERVALS_PER_DAY:
        problems.append(f"{day}: at most {MAX_INTERVALS_PER_DAY} intervals a day.")
        return []
    out: list[Interval] = []
    for index, pair in enumerate(raw):
        where = f"{day}[{index}]"
        if not (isinstance(pair, list) and len(pair) == 2):
            problems.append(f'{where}: an interval is a pair ["HH:MM", "HH:MM"].')
            continue
        start, end = _minute(pair[0]), _minute(pair[1])
        if start is None or end is None:
            problems.append(f"{where}: times are HH:MM from 00:00 to 23:59.")
        elif start == end:
            problems.append(f"{where}: the start and the end must differ.")
        else:
            out.append(Interval(start, end))
    return out


def _overlaps(days: Sequence[Sequence[Interval]]) -> list[str]:
    """Overlapping intervals on the week's circle of minutes (Sunday's night into Monday)."""
    spans: list[tuple[int, int, str]] = []
    for n, intervals in enumerate(days):
        for interval in intervals:
            start = n * MINUTES_PER_DAY + interval.start
            end = start - interval.start + interval.end
            if interval.overnight:
                end += MINUTES_PER_DAY
            label = f"{WEEKDAYS[n]} {interval.as_json()[0]}-{interval.as_json()[1]}"
            if end > MINUTES_PER_WEEK:
                spans.append((start, MINUTES_PER_WEEK, label))
                spans.append((0, end - MINUTES_PER_WEEK, label))
            else:
                spans.append((start, end, label))
    spans.sort()
    problems: list[str] = []
    for (_, end_a, label_a), (start_b, _, label_b) in zip(spans, spans[1:], strict=False):
        if start_b < end_a and label_a != label_b:
            problems.append(f"The intervals {label_a} and {label_b} overlap.")
    return problems


def _minute(value: Any) -> int | None:
    match = _HHMM.match(value) if isinstance(value, str) else None
    return int(match[1]) * 60 + int(match[2]) if match else None


def _format(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _by_start(interval: Interval) -> int:
    return interval.start


def _at(day: date, minute: int, tz: tzinfo) -> datetime:
    """The instant, in UTC, of a local wall time. fold=0: a repeated wall time is its first
    pass; a skipped one lands past the jump. (In UTC because ``astimezone`` into the same
    zone would hand a skipped wall time back as it is, as if it existed.)"""
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz).astimezone(UTC)


def _offset_changes(tz: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """The instants in [start, end] at which ``tz``'s UTC offset changes (to the second)."""
    out: list[datetime] = []
    step = timedelta(hours=6)
    low = start.astimezone(UTC)
    while low < end:
        high = min(low + step, end.astimezone(UTC))
        if low.astimezone(tz).utcoffset() != high.astimezone(tz).utcoffset():
            out.append(_bisect_change(tz, low, high))
        low = high
    return out


def _bisect_change(tz: tzinfo, low: datetime, high: datetime) -> datetime:
    before = low.astimezone(tz).utcoffset()
    while high - low > _TRANSITION_PRECISION:
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)  # offsets change on whole seconds
