"""Recompute the whole decision ledger chain; exit 0 when intact, 1 with the first broken link otherwise."""

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audits.ledger import ledger_anchor_check, ledger_head_signature_valid, ledger_verify


class Command(BaseCommand):
    help = (
        "Verify the decision ledger: recompute every event's SHA-256 and its link to the event before it, "
        "streaming rows in id order. With --anchor, also check that a head hash exported earlier (and kept "
        "outside the database) is still the hash at its position, which proves that the chain was not "
        "rewritten or cut short since."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--anchor", type=Path, help="A head export (JSON) downloaded from the console earlier.")
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows fetched per round trip.")

    def handle(self, *args, anchor: Path | None, batch_size: int, **options) -> None:
        anchor_document = self._read_anchor(anchor) if anchor else None
        started = time.perf_counter()
        result = ledger_verify(batch_size=batch_size)
        elapsed = time.perf_counter() - started
        if not result.intact:
            raise CommandError(
                f"Ledger BROKEN at event #{result.broken_event_id} after {result.checked} intact events: "
                f"{result.problem}.\n  expected hash: {result.expected_hash}\n  found hash:    {result.found_hash}",
                returncode=1,
            )
        self.stdout.write(
            f"Ledger intact: {result.checked} events verified in {elapsed:.1f} s; head hash {result.head_hash}"
            + (f" (event #{result.last_event_id})" if result.last_event_id else "")
        )
        if anchor_document is not None:
            self._check_anchor(anchor_document)

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
