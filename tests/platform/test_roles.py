from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from hitl_platform.roles import ROLE_PERMISSIONS, Role, sync_role_permissions


def test_every_declared_role_permission_exists(db):
    assert sync_role_permissions() == []


def test_each_role_group_holds_exactly_its_declared_permissions(db):
    for role, names in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role.value)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert held == set(names), role


def test_only_console_roles_get_admin_access(compliance_officer, ml_engineer, reviewer_a, adjudicator, outsider):
    assert compliance_officer.is_staff
    assert not any(user.is_staff for user in (ml_engineer, reviewer_a, adjudicator, outsider))


def test_reviewers_hold_no_model_or_decision_permission(reviewer_a):
    assert reviewer_a.has_perm("reviews.review_cases")
    assert not reviewer_a.has_perm("reviews.view_decision")
    assert not reviewer_a.has_perm("models_registry.view_mlmodel")
    assert not reviewer_a.has_perm("reviews.adjudicate_cases")


def test_compliance_officers_read_but_never_write_decisions_or_the_ledger(compliance_officer):
    assert compliance_officer.has_perm("reviews.view_decision")
    for forbidden in (
        "reviews.change_decision",
        "reviews.add_review",
        "audits.change_decisionevent",
        "audits.delete_decisionevent",
        "models_registry.add_modelversion",
    ):
        assert not compliance_officer.has_perm(forbidden), forbidden


def test_outsiders_have_no_permission_at_all(outsider):
    assert outsider.get_all_permissions() == set()
    assert not Group.objects.filter(user=outsider).exists()


def test_role_groups_are_created_by_migration(db):
    assert set(Group.objects.values_list("name", flat=True)) >= {role.value for role in Role}


def test_compliance_officers_may_export_trails(compliance_officer):
    assert compliance_officer.has_perms(["audits.add_export", "audits.view_export"])


def test_a_removed_role_stops_working_at_the_next_request(reviewer_a):
    assert reviewer_a.has_perm("reviews.review_cases")
    reviewer_a.groups.clear()

    assert not get_user_model().objects.get(pk=reviewer_a.pk).has_perm("reviews.review_cases")


def test_a_permission_granted_to_the_user_directly_counts_alongside_the_roles(reviewer_a):
    reviewer_a.user_permissions.add(Permission.objects.get(codename="view_decision"))
    user = get_user_model().objects.get(pk=reviewer_a.pk)

    assert user.has_perms(["reviews.review_cases", "reviews.view_decision"])
