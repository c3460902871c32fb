"""Append to and verify the tamper-evident decision ledger.

Imports no other app of ours: every app calls it to record a governed event in the same transaction as the
change itself. Appends are serialised (a PostgreSQL transaction-level advisory lock; SQLite's writer lock) so
the chain never forks. The lock is held until the caller's transaction commits, so call the ledger as the
last write of a transaction.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.signing import Signer
from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from audits.models import DecisionEvent
from hitl_platform.db import copy_rows, reserve_ids

GENESIS_HASH = "0" * 64
# An arbitrary constant naming "the ledger head" among PostgreSQL advisory locks.
LEDGER_ADVISORY_LOCK_KEY = 0x48_49_54_4C_4C_45_44_47


# Built once: json.dumps with non-default options builds a new encoder per call, a fifth of the cost of hashing
# an event when verifying a million of them.
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the one byte string a payload hashes to."""
    return _CANONICAL_ENCODER.encode(value)


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


_EVENT_COLUMNS = (
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


def ledger_append_many(entries: Sequence[LedgerEntry], *, returning: bool = True) -> list[DecisionEvent]:
    """Append entries in order as one chained run; joins the caller's transaction.

    Returns the saved events, or an empty list with ``returning=False``: the intake hot path does not read
    them back and saves building a model instance per event.
    """
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
                (
                    entry.event_type,
                    actor_id,
                    actor_label,
                    entry.object_type,
                    object_id,
                    payload,
                    now,
                    previous_hash,
                    digest,
                )
            )
            previous_hash = digest
        if connection.vendor == "postgresql" and len(rows) > 1:
            # COPY, with ids reserved first so that they ascend in chain order, as verification walks it.
            ids = reserve_ids(DecisionEvent, len(rows))
            rows = [(event_id, *row) for event_id, row in zip(ids, rows, strict=True)]
            copy_rows(DecisionEvent._meta.db_table, _EVENT_COLUMNS, rows)
            return [_saved_event(row) for row in rows] if returning else []
        rows = [(None, *row) for row in rows]
        events = DecisionEvent.objects.bulk_create([_event(row) for row in rows], batch_size=2000)
        return events if returning else []


def _event(row: tuple) -> DecisionEvent:
    return DecisionEvent(**dict(zip(_EVENT_COLUMNS, row, strict=True)))


def _saved_event(row: tuple) -> DecisionEvent:
    event = _event(row)
    event._state.adding = False
    return event


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
    last_event_id: int | None = None

    @property
    def intact(self) -> bool:
        return self.broken_event_id is None


def _stream_events(batch_size: int) -> Iterator[tuple]:
    yield from DecisionEvent.objects.order_by("id").values_list(*_EVENT_COLUMNS).iterator(chunk_size=batch_size)


def ledger_verify(*, batch_size: int = 5000) -> LedgerVerification:
    """Recompute every link in id order, streaming rows; report the first one that does not hold."""
    expected_previous = GENESIS_HASH
    checked = 0
    last_event_id = None
    for row in _stream_events(batch_size):
        event_id, event_type, actor_id, actor_label, object_type, object_id, payload, created_at, prev, found = row
        if prev != expected_previous:
            return LedgerVerification(
                checked=checked,
                head_hash=expected_previous,
                broken_event_id=event_id,
                expected_hash=expected_previous,
                found_hash=prev,
                last_event_id=last_event_id,
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
                last_event_id=last_event_id,
                problem="the event's content does not match its hash (the event was altered)",
            )
        expected_previous = found
        last_event_id = event_id
        checked += 1
    return LedgerVerification(checked=checked, head_hash=expected_previous, last_event_id=last_event_id)


def ledger_with_prior_hash(queryset: QuerySet[DecisionEvent]) -> QuerySet[DecisionEvent]:
    """Annotate each event with the hash of the event just before it by id (GENESIS_HASH for the first).

    One query for any number of events: ids have gaps on PostgreSQL (rolled-back sequence values), so "the
    event before" is the greatest smaller id, found by a backward primary-key index scan per event.
    """
    before = DecisionEvent.objects.filter(id__lt=OuterRef("id")).order_by("-id").values("hash")[:1]
    return queryset.annotate(prior_hash=Coalesce(Subquery(before), Value(GENESIS_HASH)))


@dataclass(frozen=True)
class EventCheck:
    """One event verified on its own: its content against its hash, and its link to the event before it."""

    event: DecisionEvent
    recomputed_hash: str
    prior_hash: str

    @property
    def content_intact(self) -> bool:
        return self.recomputed_hash == self.event.hash

    @property
    def link_intact(self) -> bool:
        return self.prior_hash == self.event.previous_hash

    @property
    def intact(self) -> bool:
        return self.content_intact and self.link_intact


def ledger_check_events(events: Iterable[DecisionEvent]) -> list[EventCheck]:
    """Verify events annotated by ``ledger_with_prior_hash``: recompute each hash, compare each link."""
    return [
        EventCheck(
            event=event,
            recomputed_hash=event_hash(
                previous_hash=event.previous_hash,
                event_type=event.event_type,
                actor_id=event.actor_id,
                actor_label=event.actor_label,
                object_type=event.object_type,
                object_id=event.object_id,
                payload=event.payload,
                created_at=event.created_at,
            ),
            prior_hash=event.prior_hash,
        )
        for event in events
    ]


HEAD_SIGNING_SALT = "audits.ledger.head"


def ledger_head_sign(document: dict[str, Any]) -> str:
    """HMAC-SHA256 (keyed by SECRET_KEY) of a head document's canonical JSON, without its signature field.

    Proves the file came from this deployment unaltered; the chain itself is proven by the hashes.
    """
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return Signer(salt=HEAD_SIGNING_SALT, algorithm="sha256").signature(canonical_json(unsigned))


def ledger_head_signature_valid(document: dict[str, Any]) -> bool:
    return constant_time_compare(str(document.get("signature", "")), ledger_head_sign(document))


@dataclass(frozen=True)
class AnchorCheck:
    """Whether an exported head (hash and event count) is still the hash of that event in today's chain."""

    event_count: int
    anchored_hash: str
    found_hash: str

    @property
    def holds(self) -> bool:
        return self.anchored_hash == self.found_hash


def ledger_anchor_check(*, head_hash: str, event_count: int) -> AnchorCheck:
    """Compare an exported head with the event at the same position today.

    With an intact chain, a match proves that the first ``event_count`` events are the ones exported: rewriting
    any of them, even with every hash recomputed, changes the hash at that position.
    """
    if event_count <= 0:
        return AnchorCheck(event_count=event_count, anchored_hash=head_hash, found_hash=GENESIS_HASH)
    found = DecisionEvent.objects.order_by("id").values_list("hash", flat=True)[event_count - 1 : event_count].first()
    return AnchorCheck(event_count=event_count, anchored_hash=head_hash, found_hash=found or "")
