"""Numbers, dates, durations and JSON as the console shows them to people: one module, so every page agrees.

Confidence and rates as a percentage with one decimal ("84.3 %"), counts with thousands separators
("12,345"), every date-time in ``TIME_ZONE`` as "2026-03-14 09:26" (sortable, unambiguous in any locale),
durations in words ("3 hours 20 minutes"), and JSON as a labelled table with the raw text one click away.
Missing values are an en dash: nothing to show is not zero.
"""

import json
from datetime import date, datetime, timedelta

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

MISSING = "\u2013"
DATETIME_FORMAT = "%Y-%m-%d %H:%M"
DATETIME_FORMAT_PRECISE = "%Y-%m-%d %H:%M:%S"

_DURATION_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def percent(value: float | None, digits: int = 1) -> str:
    """A share of one as a percentage: 0.8431 -> "84.3 %"; None (nothing to divide by) -> an en dash."""
    if value is None:
        return MISSING
    return f"{value * 100:.{int(digits)}f} %"


def count(value: int | None) -> str:
    """12345 -> "12,345"."""
    if value is None:
        return MISSING
    return f"{value:,}"


def when(value: datetime | date | None, *, seconds: bool = False) -> str:
    """A moment in the console's time zone, "2026-03-14 09:26" (with seconds for audit trails)."""
    if value is None:
        return MISSING
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.strftime(DATETIME_FORMAT_PRECISE if seconds else DATETIME_FORMAT)
    return value.strftime("%Y-%m-%d")


def when_html(value: datetime | None, *, seconds: bool = False) -> str:
    """``when`` in a <time> element whose tooltip names the exact second and the time zone."""
    if value is None:
        return MISSING
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}" title="{} {}">{}</time>',
        local.isoformat(),
        when(local, seconds=True),
        local.tzname() or timezone.get_current_timezone_name(),
        when(local, seconds=seconds),
    )


def duration(value: timedelta | float | None, *, parts: int = 2) -> str:
    """A length of time in words, its ``parts`` largest units: 12_000 s -> "3 hours 20 minutes"."""
    if value is None:
        return MISSING
    seconds = round(value.total_seconds() if isinstance(value, timedelta) else float(value))
    if seconds < 1:
        return "under a second" if seconds == 0 and value else "0 seconds"
    words = []
    for unit, size in _DURATION_UNITS:
        amount, seconds = divmod(seconds, size)
        if amount:
            words.append(f"{amount} {unit}{'' if amount == 1 else 's'}")
        if len(words) == parts:
            break
    return " ".join(words)


def hours(value: float | None) -> str:
    """A duration given in hours (the dashboard's medians), in words."""
    return MISSING if value is None else duration(value * 3600)


def label(key: str) -> str:
    """A JSON key for people: "credit_score" -> "Credit score"."""
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else str(key)


def _scalar(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return count(value)
    if isinstance(value, float):
        return f"{value:,}"
    return str(value)


def _cell(value) -> str:
    if isinstance(value, dict):
        return _rows_table(value) if value else MISSING
    if isinstance(value, list):
        if not value:
            return MISSING
        if all(not isinstance(item, (dict, list)) for item in value):
            return ", ".join(_scalar(item) for item in value)
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((_cell(item),) for item in value)))
    return _scalar(value)


def _rows_table(mapping: dict) -> str:
    rows = format_html_join(
        "", '<tr><th scope="row">{}</th><td>{}</td></tr>', ((label(k), _cell(v)) for k, v in mapping.items())
    )
    return format_html('<table class="hitl-table hitl-json-table">{}</table>', rows)


def json_table(value, *, empty: str = "none") -> SafeString:
    """JSON for people: an object as a table of labelled rows (nested objects as nested tables), a list of
    plain values as a list, and the raw JSON in a closed <details> beneath."""
    if value in (None, "", {}, []):
        return format_html('<span class="quiet">{}</span>', empty)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html("{}", value)
    if isinstance(value, dict):
        body = _rows_table(value)
    elif isinstance(value, list) and all(not isinstance(item, (dict, list)) for item in value):
        body = format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((_scalar(item),) for item in value)))
    else:
        body = format_html("{}", _cell(value))
    raw = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return format_html(
        '<div class="hitl-json-view">{}<details class="hitl-raw-json"><summary>Raw JSON</summary>'
        '<pre class="hitl-json">{}</pre></details></div>',
        body,
        raw,
    )
