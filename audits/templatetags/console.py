from django import template

register = template.Library()


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    """0.1234 -> "12.3 %"; None (an undefined rate: nothing to divide by) -> an en dash."""
    if value is None:
        return "\u2013"
    return f"{value * 100:.{int(digits)}f} %"
