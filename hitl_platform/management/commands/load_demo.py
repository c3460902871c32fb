"""Load the demo: one account per role with fresh printed passwords, and a credit-scoring model at work."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from hitl_platform.demo import DemoCast, demo_data_load
from hitl_platform.roles import Role
from hitl_platform.services import user_assign_roles

DEMO_ACCOUNTS: list[tuple[str, list[Role], bool]] = [
    ("admin", [], True),
    ("carla", [Role.COMPLIANCE_OFFICER], False),
    ("mia", [Role.ML_ENGINEER], False),
    ("rita", [Role.REVIEWER], False),
    ("ravi", [Role.REVIEWER], False),
    ("ada", [Role.REVIEWER, Role.ADJUDICATOR], False),
]


class Command(BaseCommand):
    help = "Create one demo account per role (new passwords on every run) and load the demo data."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host: str, port: str, **options):
        passwords = self._create_accounts()
        users = {user.username: user for user in get_user_model().objects.filter(username__in=passwords)}
        cast = DemoCast(
            ml_engineer=users["mia"],
            compliance_officer=users["carla"],
            reviewers=(users["rita"], users["ravi"]),
            adjudicator=users["ada"],
        )
        summary = demo_data_load(cast)
        base = f"http://{host}:{port}"
        lines = [
            "",
            "hitl_platform demo is ready.",
            f"  Governance console (admin):  {base}/admin/",
            f"  Reviewer pages:              {base}/review/",
            f"  API documentation:           {base}/api/v1/docs/",
            f"  Log in:                      {base}/accounts/login/",
            "",
            f"  Demo model credit-scoring:   {summary.predictions} cases routed, {summary.open_tasks} waiting for "
            f"review, {summary.decided_by_people} decided by people" + ("" if summary.created else " (already loaded)"),
            "",
            "  Accounts (passwords are new on every run):",
        ]
        for username, roles, is_superuser in DEMO_ACCOUNTS:
            role_names = "Administrator" if is_superuser else ", ".join(role.value for role in roles)
            lines.append(f"    {username:<8} {passwords[username]:<16} {role_names}")
        lines.append("")
        self.stdout.write("\n".join(lines))

    @transaction.atomic
    def _create_accounts(self) -> dict[str, str]:
        User = get_user_model()
        passwords = {}
        for username, roles, is_superuser in DEMO_ACCOUNTS:
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.org"})
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_superuser = is_superuser
            user.save()
            user_assign_roles(user=user, roles=roles)
            passwords[username] = password
        return passwords
