from django.apps import AppConfig


class AuditsConfig(AppConfig):
    name = "audits"
    verbose_name = "Audits and ledger"

    def ready(self) -> None:
        # Registers the retention floor check with Django's system checks.
        from audits import checks  # noqa: F401
        from audits.gates import GATE_NAME, bias_audit_gate
        from audits.receivers import audit_version_when_production_is_requested
        from models_registry.gates import register_promotion_gate
        from models_registry.signals import promotion_requested

        register_promotion_gate(bias_audit_gate, name=GATE_NAME)
        promotion_requested.connect(audit_version_when_production_is_requested, dispatch_uid="audits.promotion_audit")
