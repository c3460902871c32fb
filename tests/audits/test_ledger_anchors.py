"""The anchor sink outside the database: signed JSON lines in an append-only file, and the minute task."""

import json
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from audits.anchors import AnchorFormatError, FileAnchorSink, anchor_make, anchor_parse, anchor_sink
from audits.ledger import LedgerEntry, LedgerHead, ledger_append_many
from audits.models import LedgerCheck
from audits.services.ledger_checks import ledger_anchor_run
from audits.tasks import ledger_anchor_task


def _head(count: int) -> LedgerHead:
    return LedgerHead(event_count=count, last_event_id=count, head_hash=f"{count:064x}")


def _chain(count: int) -> None:
    ledger_append_many([LedgerEntry("decision.made", "reviews.decision", n, {"n": n}) for n in range(count)])


@pytest.mark.parametrize(
    ("url", "path"),
    [("file:///srv/anchors/ledger.jsonl", "/srv/anchors/ledger.jsonl"), ("/srv/ledger.jsonl", "/srv/ledger.jsonl")],
)
def test_the_sink_is_a_file_named_by_a_file_url_or_a_bare_path(url, path):
    sink = anchor_sink(url)

    assert isinstance(sink, FileAnchorSink)
    assert sink.path == Path(path)


@pytest.mark.parametrize("url", ["s3://bucket/anchors.jsonl", "file://otherhost/anchors.jsonl", ""])
def test_it_refuses_a_sink_it_cannot_write(url):
    with pytest.raises(ImproperlyConfigured, match="LEDGER_ANCHOR_URL"):
        anchor_sink(url)


def test_anchors_are_signed_lines_appended_in_order_and_the_newest_is_read_from_the_end(tmp_path):
    sink = FileAnchorSink(tmp_path / "deep" / "folder" / "anchors.jsonl")
    for count in range(1, 301):  # more than one block from the end
        sink.append(anchor_make(head=_head(count), at=timezone.now()))

    anchors = list(sink.anchors())
    newest = sink.latest()

    assert [anchor.event_count for anchor in anchors] == list(range(1, 301))
    assert anchors[41].number == 42 and anchors[41].name.startswith("anchor 42 (anchored ")
    assert (newest.event_count, newest.head_hash, newest.number) == (300, f"{300:064x}", 0)
    assert all(anchor.signature_valid for anchor in anchors) and newest.signature_valid
    assert oct(sink.path.stat().st_mode & 0o777) == "0o640"


def test_an_anchor_edited_in_the_file_loses_its_signature():
    anchor = anchor_make(head=_head(5), at=timezone.now())
    document = json.loads(anchor.as_line())

    assert anchor_parse(anchor.as_line()).signature_valid
    assert not anchor_parse(json.dumps({**document, "event_count": 4})).signature_valid
    assert not anchor_parse(json.dumps({**document, "head_hash": "f" * 64})).signature_valid


@pytest.mark.parametrize("line", ['{"event_count": 1', '{"event_count": true, "head_hash": "x"}', "[1, 2]"])
def test_a_line_that_is_not_an_anchor_is_refused_with_its_number(line):
    with pytest.raises(AnchorFormatError, match="line 7 of the anchor sink"):
        anchor_parse(line, number=7)


def test_the_newest_anchor_cut_short_stops_the_anchor_task_with_a_broken_verification(db, anchor_file):
    _chain(2)
    assert ledger_anchor_run().anchor is not None
    with anchor_file.open("a") as sink:
        sink.write('{"event_count": 3, "last_event_id"')
    _chain(1)

    run = ledger_anchor_run()

    assert run.anchor is None
    assert run.check.status == "broken"
    assert "not JSON" in run.check.problem
    assert len(anchor_file.read_text().splitlines()) == 2


def test_a_newest_anchor_signed_with_another_key_stops_the_anchor_task(db, anchor_file, settings):
    _chain(2)
    ours = settings.LEDGER_ANCHOR_KEY
    settings.LEDGER_ANCHOR_KEY = "another-deployment-key-of-32-characters"
    anchor_sink().append(anchor_make(head=_head(2), at=timezone.now()))
    settings.LEDGER_ANCHOR_KEY = ours

    run = ledger_anchor_run()

    assert run.anchor is None
    assert "does not carry this deployment's signature" in run.check.problem


def test_the_first_anchor_follows_a_full_verification_against_the_recorded_heads(db, anchor_file):
    _chain(3)
    LedgerCheck.objects.create(status="intact", checked=3, last_event_id=3, head_hash="0" * 64)

    run = ledger_anchor_run()

    assert run.anchor is None
    assert "not signed with this deployment's ledger key" in run.check.problem
    assert not anchor_file.exists() or anchor_file.read_text() == ""


def test_the_task_anchors_the_head_and_is_scheduled_every_minute_by_its_stable_name(db, anchor_file):
    _chain(3)

    assert ledger_anchor_task.name == "audits.ledger_anchor"
    assert ledger_anchor_task() == 3
    assert ledger_anchor_task() is None
    schedule = django_settings.CELERY_BEAT_SCHEDULE["audits-ledger-anchor"]
    assert (schedule["task"], schedule["schedule"]) == ("audits.ledger_anchor", 60.0)
    assert django_settings.LEDGER_ANCHOR_INTERVAL_SECONDS == 60
