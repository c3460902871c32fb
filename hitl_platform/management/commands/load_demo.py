"""Load the demo: one account per role with fresh printed passwords, and the HITL story on the German credit data."""

import secrets
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.test.utils import override_settings
from tqdm import tqdm

from audits.selectors.outcomes import OutcomeRow
from hitl_platform.demo import DemoCast, SimulatedReviewer, demo_data_load
from hitl_platform.roles import Role
from hitl_platform.services import user_assign_roles

# username, roles, superuser, the name the console shows (simulated reviewers say so).
DEMO_ACCOUNTS: list[tuple[str, list[Role], bool, str]] = [
    ("admin", [], True, "Administrator"),
    ("carla", [Role.COMPLIANCE_OFFICER], False, "Carla, compliance officer"),
    ("mia", [Role.ML_ENGINEER], False, "Mia, ML engineer"),
    ("rita", [Role.REVIEWER], False, "Rita (simulated reviewer)"),
    ("ravi", [Role.REVIEWER], False, "Ravi (simulated reviewer)"),
    ("sam", [Role.REVIEWER], False, "Sam (simulated reviewer)"),
    ("ada", [Role.REVIEWER, Role.ADJUDICATOR], False, "Ada (simulated adjudicator)"),
]
# The simulated reviewers' stated behaviour: how often each is wrong, and Ravi's bias against under-25 applicants.
REVIEWER_ERROR_RATES = {"rita": 0.08, "ravi": 0.10, "sam": 0.12}
RAVI_UNDER_25_DENIAL = 0.4
ADJUDICATOR_ERROR_RATE = 0.05


class Command(BaseCommand):
    help = "Create one demo account per role (new passwords on every run) and load the demo story."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")
        parser.add_argument("--cases", type=int, default=None, help="Stream only this many applications (tests).")

    def handle(self, *args, host: str, port: str, cases: int | None, **options):
        passwords = self._create_accounts()
        users = {user.username: user for user in get_user_model().objects.filter(username__in=passwords)}
        cast = DemoCast(
            ml_engineer=users["mia"],
            compliance_officer=users["carla"],
            administrator=users["admin"],
            reviewers=(
                SimulatedReviewer(users["rita"], REVIEWER_ERROR_RATES["rita"]),
                SimulatedReviewer(users["ravi"], REVIEWER_ERROR_RATES["ravi"], under_25_denial=RAVI_UNDER_25_DENIAL),
                SimulatedReviewer(users["sam"], REVIEWER_ERROR_RATES["sam"]),
            ),
            adjudicator=SimulatedReviewer(users["ada"], ADJUDICATOR_ERROR_RATE),
        )
        interactive = self.stdout.isatty() if hasattr(self.stdout, "isatty") else False

        def progress(items, label: str, total: int):
            return tqdm(items, desc=label, total=total, unit="", leave=False, file=sys.stderr, disable=not interactive)

        # The story's notifications (failed audits) go to files, not into the middle of what it prints.
        mail_folder = Path(settings.BASE_DIR) / "var" / "demo-mail"
        with override_settings(
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=mail_folder
        ):
            summary = demo_data_load(cast, progress=progress, cases=cases)
        base = f"http://{host}:{port}"
        lines = ["", "The story of this run:"]
        lines += [f"  - {step}" for step in summary.steps]
        if summary.created:
            lines.append(f"  - The notification emails it sent (failed audits) are in {mail_folder}/.")
        for attribute, rows in summary.outcomes.items():
            lines += ["", *outcome_lines(rows, attribute)]
        lines += [
            "",
            "hitl_platform demo is ready.",
            f"  Governance console (admin):  {base}/admin/",
            f"  Reviewer pages:              {base}/review/",
            f"  API documentation:           {base}/api/v1/docs/",
            f"  Log in:                      {base}/accounts/login/",
            "",
            f"  Demo model credit-scoring:   {summary.predictions} cases routed, {summary.open_tasks} waiting "
            "for review",
            "",
            "  First three things to click, as carla:",
            f"    1. {base}/admin/ : the dashboard, with the outcome table, the audits and the ledger check",
            f"    2. {base}/admin/audits/biasaudit/ : the audits of the model, the reviewers and the decisions",
            f"    3. {base}/admin/audits/retrainingjob/ : the mitigated candidate and its comparison, waiting for you",
            "",
            "  Accounts (passwords are new on every run; rita, ravi, sam and ada are simulated reviewers):",
        ]
        for username, roles, is_superuser, _ in DEMO_ACCOUNTS:
            role_names = "Administrator" if is_superuser else ", ".join(role.value for role in roles)
            lines.append(f"    {username:<8} {passwords[username]:<16} {role_names}")
        lines.append("")
        self.stdout.write("\n".join(lines))

    @transaction.atomic
    def _create_accounts(self) -> dict[str, str]:
        User = get_user_model()
        passwords = {}
        for username, roles, is_superuser, display in DEMO_ACCOUNTS:
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.org"})
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.is_superuser = is_superuser
            user.first_name = display
            user.save()
            user_assign_roles(user=user, roles=roles)
            passwords[username] = password
        return passwords


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def outcome_lines(rows: list[OutcomeRow], attribute: str) -> list[str]:
    """The outcome table as text: one line per group, against the real outcomes of the decided cases."""
    header = (
        f"  Outcomes against the real labels, by {attribute.replace('_', ' ')}:",
        f"    {'group':<14}{'cases':>7}{'automated':>11}{'AI only':>9}{'humans':>9}{'combined':>10}"
        f"{'errors removed':>16}{'work saved':>12}",
    )
    return [
        *header,
        *(
            f"    {row.group:<14}{row.cases:>7}{_percent(row.automation_rate):>11}{_percent(row.ai_accuracy):>9}"
            f"{_percent(row.human_accuracy):>9}{_percent(row.combined_accuracy):>10}"
            f"{_percent(row.error_reduction):>16}{_percent(row.workload_saved):>12}"
            for row in rows
        ),
    ]
