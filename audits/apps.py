from django.apps import AppConfig


class AuditsConfig(AppConfig):
    name = "audits"
    verbose_name = "Audits and ledger"

    def ready(self) -> None:
        # Registers the retention floor check with Django's system checks.
        from audits import checks  # noqa: F401
