"""Verify the decision ledger and reconcile the governed rows; exit 0 when both hold, 1 otherwise.

Records the run as a verification (the console lists it), like the console's and the nightly ones.
"""

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audits.anchors import anchor_sink
from audits.choices import LedgerCheckOrigin, LedgerCheckStatus
from audits.ledger import ledger_anchor_check, ledger_head_signature_valid
from audits.models import LedgerCheck
from audits.services.ledger_checks import ledger_check_run
from audits.services.reconciliation import Mismatch


class Command(BaseCommand):
    help = (
        "Verify the decision ledger: recompute every event's SHA-256, its seal and its link to the event before "
        "it, streaming rows in id order, and check that every head recorded by an earlier verification (and the "
        "newest anchor) is still in the chain. Then reconcile the governed rows (decisions, reviews, version "
        "stages, routing policies) with their latest ledger events and list each mismatch. With --anchors, check "
        "every anchor in LEDGER_ANCHOR_URL; with --anchor FILE, a head exported from the console."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--anchor", type=Path, help="A head export (JSON) downloaded from the console earlier.")
        parser.add_argument(
            "--anchors",
            action="store_true",
            help="Check every anchor in LEDGER_ANCHOR_URL: its signature, and that the chain still holds its hash.",
        )
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows fetched per round trip.")

    def handle(self, *args, anchor: Path | None, anchors: bool, batch_size: int, **options) -> None:
        anchor_document = self._read_anchor(anchor) if anchor else None
        started = time.perf_counter()
        check = LedgerCheck.objects.create(origin=LedgerCheckOrigin.COMMAND)
        check = ledger_check_run(
            check=check, every_anchor=anchors, batch_size=batch_size, on_mismatch=self._print_mismatch
        )
        elapsed = time.perf_counter() - started
        if check.status == LedgerCheckStatus.BROKEN:
            where = f" at event #{check.broken_event_id}" if check.broken_event_id is not None else ""
            raise CommandError(
                f"Ledger BROKEN{where} after {check.checked} intact events: {check.problem}.\n"
                f"  expected hash: {check.expected_hash}\n  found hash:    {check.found_hash}"
                + self._mismatch_summary(check),
                returncode=1,
            )
        self.stdout.write(
            f"Ledger intact: {check.checked} events verified in {elapsed:.1f} s; head hash {check.head_hash}"
            + (f" (event #{check.last_event_id})" if check.last_event_id else "")
            + f"; {check.heads_compared} earlier head(s) still in the chain (verification {check.pk})."
        )
        if anchors:
            self.stdout.write(f"Every anchor in {anchor_sink().description} holds.")
        for table, count in sorted(check.unrecorded.items()):
            self.stdout.write(f"Note: {count} {table} row(s) have no ledger event (written outside the services).")
        if anchor_document is not None:
            self._check_anchor(anchor_document)
        if check.mismatch_count:
            raise CommandError(
                f"{check.mismatch_count} governed row field(s) differ from their latest ledger event "
                f"(of {check.rows_reconciled} rows reconciled): listed above.",
                returncode=1,
            )
        self.stdout.write(f"Governed rows reconciled: {check.rows_reconciled} rows match their latest ledger event.")

    def _print_mismatch(self, mismatch: Mismatch) -> None:
        self.stderr.write(
            f"MISMATCH {mismatch.table} {mismatch.object_id} {mismatch.field}: "
            f"ledger {json.dumps(mismatch.ledger_value)} (event #{mismatch.event_id}), "
            f"row {json.dumps(mismatch.row_value)}"
        )

    def _mismatch_summary(self, check: LedgerCheck) -> str:
        if not check.mismatch_count:
            return ""
        return f"\n{check.mismatch_count} governed row field(s) also differ from their latest ledger event."

    def _read_anchor(self, path: Path) -> dict:
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}", returncode=2) from exc
        if not (
            isinstance(document, dict)
            and isinstance(document.get("head_hash"), str)
            and isinstance(document.get("event_count"), int)
        ):
            raise CommandError(f"{path} is not a ledger head export (head_hash and event_count).", returncode=2)
        return document

    def _check_anchor(self, document: dict) -> None:
        if not ledger_head_signature_valid(document):
            self.stderr.write(
                "Warning: the anchor's signature does not match this deployment's key "
                "(edited file, or exported elsewhere); its hash is checked all the same."
            )
        check = ledger_anchor_check(head_hash=document["head_hash"], event_count=document["event_count"])
        if not check.holds:
            raise CommandError(
                f"Anchor does NOT hold: event {check.event_count} of the chain should have hash "
                f"{check.anchored_hash} (exported {document.get('verified_at', '?')}), found "
                f"{check.found_hash or 'no such event'}: the chain was rewritten or cut short.",
                returncode=1,
            )
        self.stdout.write(f"Anchor holds: event {check.event_count} still has hash {check.anchored_hash}.")
