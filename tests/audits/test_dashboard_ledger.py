"""The dashboard headlines the ledger's latest verification, and turns red whenever the chain is not known intact."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audits.choices import LedgerCheckOrigin
from audits.models import DecisionEvent, LedgerCheck
from audits.selectors.ledger import ledger_standing
from audits.services.ledger_checks import ledger_check_run
from hitl_platform import humanize
from reviews.models import Decision
from tests.audits.conftest import ledger_tampering

HEADLINE = re.compile(r'<div id="dashboard-ledger" class="(?P<css>[^"]+)">(?P<body>.*?)</div>', re.S)


def _verify(*, origin: str = LedgerCheckOrigin.SCHEDULE, requested_by=None) -> LedgerCheck:
    return ledger_check_run(check=LedgerCheck.objects.create(origin=origin, requested_by=requested_by))


def _headline(client, user) -> tuple[str, str]:
    """The ledger's headline on the dashboard: its CSS class and its text, whitespace collapsed."""
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    found = HEADLINE.search(response.content.decode())
    assert found, "the dashboard shows no ledger headline"
    return found["css"], " ".join(found["body"].split())


def _shown(moment) -> str:
    return humanize.when(moment)


def test_a_ledger_never_verified_says_so_in_red(client, compliance_officer, reviewed_case):
    LedgerCheck.objects.create(origin=LedgerCheckOrigin.SCHEDULE)  # queued, not finished: proves nothing yet

    css, text = _headline(client, compliance_officer)

    assert css == "hitl-kpi-alert"
    assert "never verified" in text
    assert f'<a href="{reverse("admin:ledger")}">decision ledger</a>' in text


def test_a_recent_intact_verification_by_the_schedule_is_shown_green_with_when_and_how_many(
    client, compliance_officer, reviewed_case
):
    check = _verify()

    css, text = _headline(client, compliance_officer)

    assert css == "hitl-kpi-ok"
    assert text.startswith('<span class="kpi">intact</span>')
    assert f"{check.checked} events verified {_shown(check.finished_at)} by the schedule" in text
    assert "more than a day ago" not in text and "differ" not in text
    assert f'href="{reverse("admin:ledger")}"' in text


@pytest.mark.parametrize(
    ("origin", "by_officer", "named"),
    [
        (LedgerCheckOrigin.CONSOLE, True, "carla_compliance"),
        (LedgerCheckOrigin.COMMAND, False, "manage.py verify_ledger"),
    ],
)
def test_the_headline_names_who_asked_for_the_verification(
    client, compliance_officer, reviewed_case, origin, by_officer, named
):
    _verify(origin=origin, requested_by=compliance_officer if by_officer else None)

    _, text = _headline(client, compliance_officer)

    assert f"by {named}" in text


def test_a_broken_chain_is_shown_red_with_the_first_broken_event(client, compliance_officer, reviewed_case):
    _, _, decision = reviewed_case
    event = DecisionEvent.objects.get(object_type="reviews.decision", object_id=str(decision.pk))
    _verify()
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=event.pk).update(payload=event.payload.replace('"deny"', '"approve"'))
    broken = _verify()

    css, text = _headline(client, compliance_officer)

    assert broken.broken_event_id == event.pk
    assert css == "hitl-kpi-alert"
    assert f'<span class="kpi">BROKEN at event #{event.pk}</span>' in text
    assert f"break found {_shown(broken.finished_at)} by the schedule" in text


def test_an_intact_verification_older_than_a_day_is_shown_red(client, compliance_officer, reviewed_case):
    check = _verify()
    LedgerCheck.objects.filter(pk=check.pk).update(finished_at=timezone.now() - timedelta(hours=25))

    css, text = _headline(client, compliance_officer)

    assert css == "hitl-kpi-alert"
    assert '<span class="kpi">intact</span>' in text
    assert "(more than a day ago)" in text


def test_rows_that_differ_from_the_ledger_are_counted_in_red_even_after_a_later_anchor_run(
    client, compliance_officer, reviewed_case
):
    _, _, decision = reviewed_case
    Decision.objects.filter(pk=decision.pk).update(final_label="approve")
    check = _verify()
    assert check.status == "intact" and check.mismatch_count == 1

    css, text = _headline(client, compliance_officer)

    assert css == "hitl-kpi-alert"
    assert '<strong class="hitl-stop">1 field of governed rows differs from the ledger</strong>' in text

    # The anchor task verifies without reconciling: its run does not make the mismatch disappear.
    now = timezone.now()
    LedgerCheck.objects.create(
        origin=LedgerCheckOrigin.ANCHOR, status="broken", broken_event_id=7, started_at=now, finished_at=now
    )
    _, text = _headline(client, compliance_officer)
    assert "BROKEN at event #7" in text and "by the anchor task" in text
    assert "1 field of governed rows differs from the ledger" in text


def test_a_verification_that_failed_to_run_is_not_shown_as_intact(client, compliance_officer, reviewed_case):
    _verify()
    LedgerCheck.objects.create(
        origin=LedgerCheckOrigin.SCHEDULE, status="failed", problem="OperationalError", finished_at=timezone.now()
    )

    css, text = _headline(client, compliance_officer)

    assert css == "hitl-kpi-alert"
    assert '<span class="kpi">verification failed</span>' in text


def test_the_ledger_standing_is_read_in_one_query(compliance_officer, reviewed_case, django_assert_num_queries):
    older = _verify()
    LedgerCheck.objects.filter(pk=older.pk).update(finished_at=timezone.now() - timedelta(hours=2))
    _verify(origin=LedgerCheckOrigin.CONSOLE, requested_by=compliance_officer)

    with django_assert_num_queries(1):
        standing = ledger_standing()
        assert (standing.verified_by, standing.mismatch_count, standing.needs_attention) == (
            "carla_compliance",
            0,
            False,
        )

    assert ledger_standing(now=timezone.now() + timedelta(days=3)).stale
