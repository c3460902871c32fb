"""Append to and verify the tamper-evident decision ledger.

Imports no other app of ours: every app calls it to record a governed event in the same transaction as the
change itself. Appends are serialised (a PostgreSQL transaction-level advisory lock; SQLite's writer lock) so
the chain never forks. The lock is held until the caller's transaction commits, so call the ledger as the
last write of a transaction.
"""

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audits.models import DecisionEvent

GENESIS_HASH = "0" * 64
# An arbitrary constant naming "the ledger head" among PostgreSQL advisory locks.
LEDGER_ADVISORY_LOCK_KEY = 0x48_49_54_4C_4C_45_44_47


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the one byte string a payload hashes to."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LedgerEntry:
    """What a caller records: the event, who did it, on which object, and a payload of ids and reasons."""

    event_type: str
    object_type: str
    object_id: str | int
    payload: dict[str, Any] = field(default_factory=dict)
    actor: Any = None


def event_hash(
    *,
    previous_hash: str,
    event_type: str,
    actor_id: int | None,
    actor_label: str,
    object_type: str,
    object_id: str,
    payload: str,
    created_at: datetime,
) -> str:
    content = canonical_json(
        [previous_hash, event_type, actor_id, actor_label, object_type, object_id, payload, created_at.isoformat()]
    )
    return sha256_hex(content)


def _actor_fields(actor: Any) -> tuple[int | None, str]:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None, "system"
    return actor.pk, actor.get_username()


def _lock_head_and_read_hash() -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_ADVISORY_LOCK_KEY])
    last = DecisionEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    return last or GENESIS_HASH


def ledger_append_many(entries: Sequence[LedgerEntry]) -> list[DecisionEvent]:
    """Append entries in order as one chained run; joins the caller's transaction."""
    if not entries:
        return []
    with transaction.atomic():
        previous_hash = _lock_head_and_read_hash()
        now = timezone.now()
        rows = []
        for entry in entries:
            actor_id, actor_label = _actor_fields(entry.actor)
            payload = canonical_json(entry.payload)
            object_id = str(entry.object_id)
            digest = event_hash(
                previous_hash=previous_hash,
                event_type=entry.event_type,
                actor_id=actor_id,
                actor_label=actor_label,
                object_type=entry.object_type,
                object_id=object_id,
                payload=payload,
                created_at=now,
            )
            rows.append(
                DecisionEvent(
                    event_type=entry.event_type,
                    actor_id=actor_id,
                    actor_label=actor_label,
                    object_type=entry.object_type,
                    object_id=object_id,
                    payload=payload,
                    created_at=now,
                    previous_hash=previous_hash,
                    hash=digest,
                )
            )
            previous_hash = digest
        return DecisionEvent.objects.bulk_create(rows, batch_size=2000)


def ledger_append(
    *, event_type: str, object_type: str, object_id: str | int, payload: dict[str, Any], actor: Any = None
) -> DecisionEvent:
    """Append one governed event; joins the caller's transaction."""
    entry = LedgerEntry(
        event_type=event_type, object_type=object_type, object_id=object_id, payload=payload, actor=actor
    )
    return ledger_append_many([entry])[0]


@dataclass(frozen=True)
class LedgerVerification:
    """The result of recomputing the chain: intact, or the first broken link with what was expected."""

    checked: int
    head_hash: str
    broken_event_id: int | None = None
    expected_hash: str = ""
    found_hash: str = ""
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_event_id is None


def _stream_events(batch_size: int) -> Iterator[tuple]:
    columns = (
        "id",
        "event_type",
        "actor_id",
        "actor_label",
        "object_type",
        "object_id",
        "payload",
        "created_at",
        "previous_hash",
        "hash",
    )
    yield from DecisionEvent.objects.order_by("id").values_list(*columns).iterator(chunk_size=batch_size)


def ledger_verify(*, batch_size: int = 5000) -> LedgerVerification:
    """Recompute every link in id order, streaming rows; report the first one that does not hold."""
    expected_previous = GENESIS_HASH
    checked = 0
    for row in _stream_events(batch_size):
        event_id, event_type, actor_id, actor_label, object_type, object_id, payload, created_at, prev, found = row
        if prev != expected_previous:
            return LedgerVerification(
                checked=checked,
                head_hash=expected_previous,
                broken_event_id=event_id,
                expected_hash=expected_previous,
                found_hash=prev,
                problem="previous_hash does not match the hash of the event before it "
                "(an event was removed, inserted or reordered)",
            )
        recomputed = event_hash(
            previous_hash=prev,
            event_type=event_type,
            actor_id=actor_id,
            actor_label=actor_label,
            object_type=object_type,
            object_id=object_id,
            payload=payload,
            created_at=created_at,
        )
        if recomputed != found:
            return LedgerVerification(
                checked=checked,
                head_hash=expected_previous,
                broken_event_id=event_id,
                expected_hash=recomputed,
                found_hash=found,
                problem="the event's content does not match its hash (the event was altered)",
            )
        expected_previous = found
        checked += 1
    return LedgerVerification(checked=checked, head_hash=expected_previous)
