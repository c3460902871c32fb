"""The console's template filters: every page formats numbers, dates, durations and JSON through
``hitl_platform.humanize``, so a figure reads the same on the dashboard, a list and a detail page."""

from django import template

from audits.events import ledger_event_label
from hitl_platform import humanize

register = template.Library()


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """0.1234 -> "12.3 %"; None (an undefined rate: nothing to divide by) -> an en dash."""
    return humanize.percent(value, digits)


@register.filter
def count(value: int | None) -> str:
    """12345 -> "12,345"."""
    return humanize.count(value)


@register.filter
def when(value, precision: str = "") -> str:
    """A date-time in the console's time zone; ``|when:"seconds"`` for audit trails."""
    return humanize.when(value, seconds=precision == "seconds")


@register.filter
def duration(value) -> str:
    """Seconds (or a timedelta) in words: 12000 -> "3 hours 20 minutes"."""
    return humanize.duration(value)


@register.filter
def hours_in_words(value: float | None) -> str:
    """Hours in words: 1.5 -> "1 hour 30 minutes"."""
    return humanize.hours(value)


@register.filter
def json_table(value):
    """JSON as a labelled table, the raw JSON in a <details> beneath."""
    return humanize.json_table(value)


@register.filter
def event_label(event_type: str) -> str:
    """A ledger event type in words: "decision.made" -> "Decision made"."""
    return ledger_event_label(event_type)
