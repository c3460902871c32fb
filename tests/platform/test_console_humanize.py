"""The console speaks to people: percentages, thousands, one date-time format in TIME_ZONE, durations in words,
JSON as labelled tables, ledger event types in words, and one name per case."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audits.events import LEDGER_EVENT_LABELS, LEDGER_EVENT_TYPES, ledger_event_label
from audits.ledger import ledger_append
from hitl_platform import humanize
from tests.reviews.factories import (
    AssignmentFactory,
    DecisionFactory,
    PredictionFactory,
    ReviewFactory,
    ReviewTaskFactory,
)


@pytest.mark.parametrize(("value", "shown"), [(0.8431, "84.3 %"), (1.0, "100.0 %"), (0.0, "0.0 %"), (None, "\u2013")])
def test_a_share_reads_as_a_percentage_with_one_decimal(value, shown):
    assert humanize.percent(value) == shown


def test_counts_have_thousands_separators():
    assert humanize.count(1234567) == "1,234,567"
    assert humanize.count(12) == "12"
    assert humanize.count(None) == "\u2013"


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (45, "45 seconds"),
        (60, "1 minute"),
        (12_000, "3 hours 20 minutes"),
        (90_061, "1 day 1 hour"),
        (0.2, "under a second"),
        (timedelta(days=3, hours=2, minutes=5), "3 days 2 hours"),
    ],
)
def test_durations_read_in_words(seconds, words):
    assert humanize.duration(seconds) == words


def test_the_dashboards_median_hours_read_in_words():
    assert humanize.hours(110 / 60) == "1 hour 50 minutes"
    assert humanize.hours(None) == "\u2013"


def test_every_moment_is_shown_in_the_configured_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    moment = datetime(2026, 3, 14, 8, 26, 53, tzinfo=UTC)
    with timezone.override("Europe/Berlin"):
        assert humanize.when(moment) == "2026-03-14 09:26"
        assert humanize.when(moment, seconds=True) == "2026-03-14 09:26:53"
        html = humanize.when_html(moment)
    assert ">2026-03-14 09:26</time>" in html
    assert 'title="2026-03-14 09:26:53 CET"' in html


def test_json_reads_as_a_labelled_table_with_the_raw_json_one_click_away():
    html = humanize.json_table({"credit_amount": 12500.5, "employment": {"years": 6, "kind": "salaried"}})

    assert '<th scope="row">Credit amount</th><td>12,500.5</td>' in html
    assert '<th scope="row">Employment</th><td><table' in html
    assert '<th scope="row">Years</th><td>6</td>' in html
    assert "<details" in html and "<summary>Raw JSON</summary>" in html
    assert "&quot;credit_amount&quot;: 12500.5" in html


def test_json_text_and_lists_are_read_too_and_escaped():
    html = humanize.json_table('{"reason":"<script>alert(1)</script>","labels":["approve","deny"]}')

    assert "<script>" not in html
    assert "approve, deny" in html
    assert humanize.json_table({}) == '<span class="quiet">none</span>'


def test_every_ledger_event_type_has_words():
    assert set(LEDGER_EVENT_LABELS) == set(LEDGER_EVENT_TYPES)
    assert ledger_event_label("decision.made") == "Decision made"
    assert ledger_event_label("something.new_here") == "Something new here"


@pytest.fixture
def long_case(db):
    return PredictionFactory(
        external_id="application-00136-" + "x" * 60,
        confidence=0.8431,
        features={"credit_amount": 12500.5, "duration": 48},
    )


def test_the_case_list_names_each_case_once_with_its_confidence_as_a_percentage(client, compliance_officer, long_case):
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:reviews_prediction_changelist")).content.decode()

    assert long_case.case_name in html
    assert f"(#{long_case.pk})" in html
    assert "84.3 %" in html
    assert "0.8431" not in html


def test_tasks_reviews_and_decisions_name_their_case_and_link_to_its_trail(client, compliance_officer, long_case):
    task = ReviewTaskFactory(prediction=long_case)
    ReviewFactory(assignment=AssignmentFactory(task=task), time_spent_seconds=200)
    DecisionFactory(prediction=long_case)
    trail = reverse("admin:case", args=[long_case.pk])
    client.force_login(compliance_officer)

    for name in ("reviewtask", "review", "decision"):
        html = client.get(reverse(f"admin:reviews_{name}_changelist")).content.decode()
        assert f'<a href="{trail}">{long_case.case_name}</a>' in html, name
    reviews = client.get(reverse("admin:reviews_review_changelist")).content.decode()
    assert "3 minutes 20 seconds" in reviews


def test_a_cases_page_shows_its_features_as_a_table(client, compliance_officer, long_case):
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:reviews_prediction_change", args=[long_case.pk])).content.decode()

    assert '<th scope="row">Credit amount</th><td>12,500.5</td>' in html
    assert "<summary>Raw JSON</summary>" in html
    assert "84.3 %" in html


def test_the_case_trail_names_the_case_and_shows_ledger_events_in_words(client, compliance_officer, long_case):
    ledger_append(
        event_type="decision.made",
        object_type="reviews.prediction",
        object_id=long_case.pk,
        payload={"final_label": "approve"},
    )
    client.force_login(compliance_officer)

    html = client.get(reverse("admin:case", args=[long_case.pk])).content.decode()

    assert f'<td id="case-name">{long_case.case_name}</td>' in html
    assert ">Decision made</td>" in html
    assert '<th scope="row">Final label</th><td>approve</td>' in html


def test_the_ledger_list_says_each_event_in_words_and_its_page_shows_the_payload_as_a_table(
    client, compliance_officer, db
):
    event = ledger_append(
        event_type="policy.stop_switch", object_type="reviews.routingpolicy", object_id=3, payload={"on": True}
    )
    client.force_login(compliance_officer)

    listing = client.get(reverse("admin:audits_decisionevent_changelist")).content.decode()
    page = client.get(reverse("admin:audits_decisionevent_change", args=[event.pk])).content.decode()

    assert "Stop switch turned on or off" in listing
    assert "policy.stop_switch</td>" not in listing
    assert "routing policy 3" in listing
    assert '<th scope="row">On</th><td>yes</td>' in page


def test_the_dashboard_counts_with_separators_and_says_when_its_figures_were_rolled_up(
    client, compliance_officer, long_case
):
    client.force_login(compliance_officer)

    response = client.get(reverse("admin:index"))
    html = response.content.decode()

    refreshed = response.context["dashboard"].refreshed_at
    assert refreshed is not None and timezone.now() - refreshed < timedelta(minutes=1)
    assert f"Figures as of <strong>{humanize.when(refreshed)}</strong>" in html
