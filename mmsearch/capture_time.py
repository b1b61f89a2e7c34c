"""Capture times as media rows hold them (wall-clock seconds where the picture was taken,
read as if UTC, plus the offset to UTC when known) to and from ISO 8601 text."""

from __future__ import annotations

import calendar
import datetime as dt


def taken_iso(taken_at: float | None, offset_minutes: int | None) -> str | None:
    """'2019-06-01T14:30:00+01:00'; without an offset when the file gave none."""
    if taken_at is None:
        return None
    when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=round(taken_at))
    if offset_minutes is None:
        return when.isoformat()
    return when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_minutes))).isoformat()


def wall_clock(text: str, end_of_day: bool = False) -> float:
    """An ISO date or datetime -> wall-clock seconds. A bare date means its first second, or
    with end_of_day its last (so that "taken_before": "2019-06-30" keeps the 30th). A zone in
    the text is ignored: photos are compared by the clock where they were taken.
    ValueError for anything else."""
    text = text.strip()
    when = dt.datetime.fromisoformat(text)
    seconds = calendar.timegm(when.replace(tzinfo=None).timetuple()) + when.microsecond / 1e6
    is_date = len(text) <= 10
    return seconds + 86_399.999999 if is_date and end_of_day else seconds
