"""System checks of the audits app: the retention period may never fall below the legal floor.

EU AI Act art. 26(6) and art. 19: deployers and providers keep the automatically generated logs of a high-risk
system for at least six months. A shorter RETENTION_DAYS would let the purge erase what the law says to keep,
so `manage.py check` (and so migrate, runserver and the test run) fails instead.
"""

from django.conf import settings
from django.core.checks import Error, register

RETENTION_FLOOR_DAYS = 183


@register()
def check_retention_days(app_configs, **kwargs) -> list[Error]:
    value = getattr(settings, "RETENTION_DAYS", None)
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [
            Error("RETENTION_DAYS must be a whole number of days.", obj="settings.RETENTION_DAYS", id="audits.E001")
        ]
    if value < RETENTION_FLOOR_DAYS:
        return [
            Error(
                f"RETENTION_DAYS is {value}, below the {RETENTION_FLOOR_DAYS}-day floor.",
                hint="Decisions and their history must be kept at least six months (EU AI Act art. 19 and "
                "26(6)); set RETENTION_DAYS to 183 or more.",
                obj="settings.RETENTION_DAYS",
                id="audits.E002",
            )
        ]
    return []
