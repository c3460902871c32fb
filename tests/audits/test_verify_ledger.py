"""`manage.py verify_ledger` and the console's ledger page: verification runs, the signed head export."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from audits.ledger import LedgerEntry, ledger_append_many, ledger_head_signature_valid
from audits.models import DecisionEvent, LedgerCheck
from audits.selectors.ledger import ledger_head_document
from tests.audits.conftest import ledger_tampering


def _chain(count: int = 4) -> list[DecisionEvent]:
    return ledger_append_many(
        [LedgerEntry("decision.made", "reviews.decision", n, {"label": "approve"}) for n in range(count)]
    )


def test_the_command_reports_an_intact_chain_with_its_head(db, capsys):
    events = _chain()

    call_command("verify_ledger")

    out = capsys.readouterr().out
    assert "Ledger intact: 4 events verified" in out
    assert events[-1].hash in out


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
    check = LedgerCheck.objects.create(status="intact", checked=3, head_hash=events[-1].hash)
    anchor = tmp_path / "head.json"
    anchor.write_text(json.dumps(ledger_head_document(check=check, exported_by=compliance_officer)))

    call_command("verify_ledger", anchor=anchor)
    assert "Anchor holds: event 3" in capsys.readouterr().out

    with ledger_tampering():
        DecisionEvent.objects.filter(pk=events[-1].pk).delete()
    with pytest.raises(CommandError, match="Anchor does NOT hold"):
        call_command("verify_ledger", anchor=anchor)


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


def test_staff_without_the_verify_permission_cannot_use_the_ledger_page(client, compliance_officer, db):
    compliance_officer.groups.clear()
    client.force_login(compliance_officer)

    assert client.get(reverse("admin:ledger")).status_code == 403
    assert client.post(reverse("admin:ledger")).status_code == 403
    assert client.get(reverse("admin:ledger_head")).status_code == 403
    assert not LedgerCheck.objects.exists()
