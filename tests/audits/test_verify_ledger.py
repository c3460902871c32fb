"""`manage.py verify_ledger` and the console's ledger page: verification runs, anchors, the signed head export."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from audits.anchors import anchor_make, anchor_sink
from audits.ledger import (
    LedgerEntry,
    LedgerHead,
    canonical_json,
    event_hash,
    event_seal,
    ledger_append_many,
    ledger_head_signature_valid,
)
from audits.models import DecisionEvent, LedgerCheck
from audits.selectors.ledger import ledger_head_document
from audits.services.ledger_checks import ledger_anchor_run
from tests.audits.conftest import ledger_tampering


def _chain(count: int = 4) -> list[DecisionEvent]:
    return ledger_append_many(
        [LedgerEntry("decision.made", "reviews.decision", n, {"label": "approve"}) for n in range(count)]
    )


def _chain_anchored_one_by_one(count: int) -> list[DecisionEvent]:
    """A chain growing one event a minute, with the anchor task running after each: one anchor per event."""
    events = []
    for n in range(count):
        events += ledger_append_many([LedgerEntry("decision.made", "reviews.decision", n, {"label": "approve"})])
        assert ledger_anchor_run().anchor.event_count == n + 1
    return events


def test_the_command_reports_an_intact_chain_with_its_head_and_records_the_verification(db, capsys):
    events = _chain()

    call_command("verify_ledger")

    out = capsys.readouterr().out
    assert "Ledger intact: 4 events verified" in out
    assert events[-1].hash in out
    check = LedgerCheck.objects.get()
    assert (check.origin, check.status, check.checked, check.last_event_id, check.head_hash) == (
        "command",
        "intact",
        4,
        events[-1].pk,
        events[-1].hash,
    )
    assert check.head_signature
    call_command("verify_ledger")
    assert "1 earlier head(s) still in the chain" in capsys.readouterr().out


def test_the_command_fails_when_events_were_cut_from_the_end_after_an_earlier_run(db):
    events = _chain()
    call_command("verify_ledger")
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()

    with pytest.raises(CommandError) as failure:
        call_command("verify_ledger")

    assert failure.value.returncode == 1
    assert f"BROKEN at event #{events[-1].pk}" in str(failure.value)
    assert "removed from its end" in str(failure.value)


def test_the_command_fails_with_the_first_broken_link_and_both_hashes(db):
    events = _chain()
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[1].pk).delete()

    with pytest.raises(CommandError) as failure:
        call_command("verify_ledger")

    message = str(failure.value)
    assert failure.value.returncode == 1
    assert f"BROKEN at event #{events[2].pk}" in message
    assert f"expected hash: {events[0].hash}" in message
    assert f"found hash:    {events[1].hash}" in message


def test_the_command_checks_a_head_exported_earlier(db, tmp_path, capsys, compliance_officer):
    events = _chain(3)
    check = LedgerCheck(status="intact", checked=3, head_hash=events[-1].hash, finished_at=timezone.now())
    anchor = tmp_path / "head.json"
    anchor.write_text(json.dumps(ledger_head_document(check=check, exported_by=compliance_officer)))

    call_command("verify_ledger", anchor=anchor)
    assert "Anchor holds: event 3" in capsys.readouterr().out

    # An attacker who also erased the recorded verifications is still caught by the head kept elsewhere.
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()
    LedgerCheck.objects.all().delete()
    with pytest.raises(CommandError, match="Anchor does NOT hold"):
        call_command("verify_ledger", anchor=anchor)


def test_every_anchor_is_checked_and_all_hold(db, capsys, anchor_file):
    _chain_anchored_one_by_one(4)
    assert len(anchor_file.read_text().splitlines()) == 4

    call_command("verify_ledger", anchors=True)

    assert f"Every anchor in {anchor_file} holds." in capsys.readouterr().out


def test_the_anchors_check_names_an_anchor_whose_signature_was_edited(db, anchor_file):
    _chain_anchored_one_by_one(3)
    lines = anchor_file.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["event_count"] = 1
    anchor_file.write_text("\n".join([lines[0], canonical_json(edited), lines[2]]) + "\n")

    with pytest.raises(CommandError, match=r"anchor 2 .* does not carry this deployment's signature") as failure:
        call_command("verify_ledger", anchors=True)
    assert failure.value.returncode == 1


def test_the_anchors_check_fails_when_the_chain_shrank_below_the_newest_anchor(db):
    events = _chain_anchored_one_by_one(3)
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()
    LedgerCheck.objects.all().delete()  # the attacker erases the recorded heads too: the anchors remain

    with pytest.raises(CommandError, match=r"anchor 3 .* recorded 3 events .* removed from its end"):
        call_command("verify_ledger", anchors=True)


def test_the_anchors_check_names_the_first_anchor_a_rewritten_and_re_sealed_chain_contradicts(db, settings):
    events = _chain_anchored_one_by_one(4)
    key = settings.LEDGER_ANCHOR_KEY.encode()
    previous = events[0].hash
    with ledger_tampering():
        for event in events[1:]:
            fields = {
                "event_type": event.event_type,
                "actor_id": None,
                "actor_label": "system",
                "object_type": event.object_type,
                "object_id": event.object_id,
                "payload": canonical_json({"label": "deny"}),
                "created_at": event.created_at,
                "previous_hash": previous,
            }
            previous = event_hash(**fields)
            seal = event_seal(previous, key=key)
            DecisionEvent.objects.filter(pk=event.pk).update(**fields, hash=previous, seal=seal)
    LedgerCheck.objects.all().delete()

    with pytest.raises(CommandError, match=r"BROKEN at event #[0-9]+ .*: anchor 2 .*recorded event 2") as failure:
        call_command("verify_ledger", anchors=True)
    assert f"event #{events[1].pk}" in str(failure.value)


def test_the_anchors_check_fails_on_a_line_that_is_not_an_anchor(db, anchor_file):
    _chain(2)
    anchor_sink().append(
        anchor_make(head=LedgerHead(event_count=0, last_event_id=None, head_hash=""), at=timezone.now())
    )
    with anchor_file.open("a") as sink:
        sink.write('{"event_count": 2, "head\n')

    with pytest.raises(CommandError, match="line 2 of the anchor sink is not JSON"):
        call_command("verify_ledger", anchors=True)


def test_the_anchor_task_verifies_only_the_events_since_the_newest_anchor(db, anchor_file):
    _chain(4)
    first = ledger_anchor_run(now=timezone.now() - timedelta(minutes=1))
    assert (first.anchor.event_count, first.verification.checked) == (4, 4)
    assert ledger_anchor_run().anchor is None  # the head did not move: nothing appended

    newer = _chain(2)
    run = ledger_anchor_run()

    assert (run.anchor.event_count, run.anchor.last_event_id, run.anchor.head_hash) == (6, newer[-1].pk, newer[-1].hash)
    assert run.verification.checked == 2  # not the 4 events the previous anchor already covers
    assert run.anchor.signature_valid
    lines = [json.loads(line) for line in anchor_file.read_text().splitlines()]
    assert [line["event_count"] for line in lines] == [4, 6]
    assert set(lines[1]) == {"event_count", "last_event_id", "head_hash", "anchored_at", "signature"}


def test_the_command_rejects_a_file_that_is_not_a_head_export(db, tmp_path):
    anchor = tmp_path / "head.json"
    anchor.write_text('{"hash": 1}')

    with pytest.raises(CommandError, match="not a ledger head export") as failure:
        call_command("verify_ledger", anchor=anchor)
    assert failure.value.returncode == 2


def test_a_compliance_officer_verifies_the_chain_from_the_console_and_downloads_a_signed_head(
    client, compliance_officer, django_capture_on_commit_callbacks
):
    events = _chain()
    client.force_login(compliance_officer)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:ledger"))
    assert response.status_code == 302
    page = client.get(reverse("admin:ledger"))
    html = page.content.decode()
    assert "Intact: 4 events verified" in html
    assert events[-1].hash in html

    download = client.get(reverse("admin:ledger_head"))
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith('attachment; filename="ledger-head-4-')
    document = json.loads(download.content)
    assert (document["head_hash"], document["event_count"], document["last_event_id"]) == (
        events[-1].hash,
        4,
        events[-1].pk,
    )
    assert document["exported_by"] == compliance_officer.username
    assert document["exported_at"] and document["verified_at"]
    assert ledger_head_signature_valid(document)
    assert not ledger_head_signature_valid({**document, "event_count": 5})
    check = LedgerCheck.objects.get()
    assert (check.status, check.requested_by) == ("intact", compliance_officer)


def test_the_console_shows_the_first_broken_link_of_a_tampered_chain(
    client, compliance_officer, django_capture_on_commit_callbacks
):
    events = _chain()
    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[2].pk).update(payload='{"label":"deny"}')
    client.force_login(compliance_officer)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:ledger"))
    html = client.get(reverse("admin:ledger")).content.decode()

    assert f"BROKEN at event #{events[2].pk}" in html
    assert events[2].hash in html  # the found hash
    assert client.get(reverse("admin:ledger_head")).status_code == 404  # no intact run to export


def test_the_console_never_offers_a_head_that_contradicts_an_earlier_one(
    client, compliance_officer, django_capture_on_commit_callbacks
):
    events = _chain()
    client.force_login(compliance_officer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:ledger"))
    assert json.loads(client.get(reverse("admin:ledger_head")).content)["event_count"] == 4

    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()
    # Before the chain is verified again, the recorded head no longer holds: it is not offered either.
    assert client.get(reverse("admin:ledger_head")).status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:ledger"))
    html = client.get(reverse("admin:ledger")).content.decode()

    assert f"BROKEN at event #{events[-1].pk}" in html
    assert "removed from its end" in html
    assert "never offered" in html
    assert client.get(reverse("admin:ledger_head")).status_code == 404


def test_staff_without_the_verify_permission_cannot_use_the_ledger_page(client, compliance_officer, db):
    compliance_officer.groups.clear()
    client.force_login(compliance_officer)

    assert client.get(reverse("admin:ledger")).status_code == 403
    assert client.post(reverse("admin:ledger")).status_code == 403
    assert client.get(reverse("admin:ledger_head")).status_code == 403
    assert not LedgerCheck.objects.exists()
