"""The roles of DESIGN.md as Django groups, with least-privilege permissions.

The groups themselves are created by a data migration. Their permissions are declared here, once, and synced
after every migrate, because each later app adds models (and so permissions) that a role must be given.
"""

from enum import StrEnum

from django.contrib.auth.models import Group, Permission
from django.db.models import Q


class Role(StrEnum):
    ML_ENGINEER = "ML engineers"
    REVIEWER = "Reviewers"
    ADJUDICATOR = "Adjudicators"
    COMPLIANCE_OFFICER = "Compliance officers"


# "app_label.codename". Compliance officers read everything governed and change only what their role
# decides (promotions, routing policies); nobody but an administrator adds, edits or deletes decisions.
ROLE_PERMISSIONS: dict[Role, tuple[str, ...]] = {
    Role.ML_ENGINEER: (
        "models_registry.view_mlmodel",
        "models_registry.add_mlmodel",
        "models_registry.change_mlmodel",
        "models_registry.view_modelversion",
        "models_registry.add_modelversion",
        "models_registry.view_promotionrequest",
        "models_registry.add_promotionrequest",
        "reviews.view_routingpolicy",
        "reviews.view_prediction",
        "reviews.add_prediction",
        "reviews.report_outcome",
        "reviews.view_decision",
        "reviews.view_webhook",
        "reviews.add_webhook",
        "reviews.change_webhook",
        "reviews.delete_webhook",
        "audits.view_biasaudit",
        "audits.add_biasaudit",
        "audits.view_auditpolicy",
        "audits.view_retrainingjob",
        "audits.add_retrainingjob",
    ),
    Role.REVIEWER: ("reviews.review_cases",),
    Role.ADJUDICATOR: ("reviews.review_cases", "reviews.adjudicate_cases"),
    Role.COMPLIANCE_OFFICER: (
        "models_registry.view_mlmodel",
        "models_registry.view_every_model",
        "models_registry.view_modelversion",
        "models_registry.view_promotionrequest",
        "models_registry.decide_promotionrequest",
        "reviews.view_routingpolicy",
        "reviews.change_routingpolicy",
        "reviews.toggle_stop_switch",
        "reviews.view_prediction",
        "reviews.view_reviewtask",
        "reviews.view_assignment",
        "reviews.view_review",
        "reviews.view_decision",
        "reviews.view_webhook",
        "reviews.view_webhookdelivery",
        "audits.view_decisionevent",
        "audits.verify_ledger",
        "audits.view_export",
        "audits.add_export",
        "audits.view_biasaudit",
        "audits.add_biasaudit",
        "audits.run_biasaudit",
        "audits.view_auditpolicy",
        "audits.change_auditpolicy",
        "audits.view_retrainingjob",
        "audits.add_retrainingjob",
        "audits.run_retrainingjob",
        "audits.view_driftcheck",
    ),
}

# Roles that work in the governance console (the Django admin) and therefore need is_staff.
CONSOLE_ROLES = frozenset({Role.COMPLIANCE_OFFICER})


def _permissions_for(names: tuple[str, ...]) -> tuple[list[Permission], list[str]]:
    if not names:
        return [], []
    query = Q()
    for name in names:
        app_label, codename = name.split(".", 1)
        query |= Q(content_type__app_label=app_label, codename=codename)
    found = list(Permission.objects.filter(query).select_related("content_type"))
    found_names = {f"{p.content_type.app_label}.{p.codename}" for p in found}
    return found, sorted(set(names) - found_names)


def sync_role_permissions() -> list[str]:
    """Give every role group exactly its declared permissions; return the declared names not found."""
    missing: list[str] = []
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        permissions, not_found = _permissions_for(names)
        group.permissions.set(permissions)
        missing.extend(not_found)
    return sorted(set(missing))


def sync_role_permissions_after_migrate(sender, **kwargs) -> None:
    # post_migrate fires once per app (and after every test-database flush); each app's permissions exist
    # only from its own pass on, so syncing on every pass leaves the last one complete.
    sync_role_permissions()
