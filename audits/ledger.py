"""Append to and verify the tamper-evident decision ledger.

Imports no other app of ours: every app calls it to record a governed event in the same transaction as the
change itself. Appends are serialised (a PostgreSQL transaction-level advisory lock; SQLite's writer lock) so
the chain never forks. The lock is held until the caller's transaction commits, so call the ledger as the
last write of a transaction.

Each event also carries a seal, HMAC-SHA256 of its hash under ``LEDGER_ANCHOR_KEY``: someone with database
access but without the deployment's key can recompute hashes, but cannot seal a forged or rewritten event.
Verification compares the chain with heads recorded earlier (``LedgerHead``), so a chain cut short or rewritten
from some point on, seals and all, no longer holds a head it once had. See docs/ledger.md.
"""

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signing import Signer
from django.db import connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from audits.models import DecisionEvent
from hitl_platform.db import copy_rows, reserve_ids

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

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


def ledger_key() -> bytes:
    """The deployment's ledger key (``LEDGER_ANCHOR_KEY``): it seals events and signs anchors and heads."""
    key = settings.LEDGER_ANCHOR_KEY
    if not key:
        raise ImproperlyConfigured("LEDGER_ANCHOR_KEY is empty: the decision ledger cannot seal events.")
    return key.encode("utf-8")


def event_seal(digest: str, *, key: bytes | None = None) -> str:
    """HMAC-SHA256 of an event's hash under the ledger key: what a forger without the key cannot produce."""
    # hmac.digest is the one-shot C implementation: a fraction of hmac.new's cost, once per event on intake.
    return hmac.digest(key or ledger_key(), digest.encode("ascii"), "sha256").hex()


def ledger_mac(text: str) -> str:
    """HMAC-SHA256 of ``text`` under the ledger key: the signature of anchors and recorded heads."""
    return hmac.digest(ledger_key(), text.encode("utf-8"), "sha256").hex()


def ledger_mac_valid(text: str, mac: str) -> bool:
    return hmac.compare_digest(ledger_mac(text), str(mac))


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


def ledger_lock() -> None:
    """Take the ledger's lock for the rest of the current transaction (again if it already holds it).

    Whoever inserts rows that consumers page through by id (decisions) takes it first: ids are then handed out in
    the order the transactions commit, so a feed read "after id N" never skips a row committed later with a lower
    id. On SQLite, IMMEDIATE transactions serialise writers already.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_ADVISORY_LOCK_KEY])


def _lock_head_and_read_hash() -> str:
    ledger_lock()
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
    "seal",
)


def ledger_append_many(entries: Sequence[LedgerEntry], *, returning: bool = True) -> list[DecisionEvent]:
    """Append entries in order as one chained run; joins the caller's transaction.

    Returns the saved events, or an empty list with ``returning=False``: the intake hot path does not read
    them back and saves building a model instance per event.
    """
    if not entries:
        return []
    key = ledger_key()
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
                    event_seal(digest, key=key),
                )
            )
            previous_hash = digest
        if connection.vendor == "postgresql" and len(rows) > 1:
            # COPY, with ids reserved first so that they ascend in chain order, as verification walks it.
            ids = reserve_ids(DecisionEvent, len(rows))
            numbered = [(event_id, *row) for event_id, row in zip(ids, rows, strict=True)]
            copy_rows(DecisionEvent._meta.db_table, _EVENT_COLUMNS, numbered)
            return [_saved_event(row) for row in numbered] if returning else []
        unnumbered = [(None, *row) for row in rows]
        events = DecisionEvent.objects.bulk_create([_event(row) for row in unnumbered], batch_size=2000)
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
class LedgerHead:
    """A head recorded earlier (by a verification, an anchor or an export): the chain's length then, its last
    event's id and hash. The chain only grows, so every later chain holds that hash at that position."""

    event_count: int
    last_event_id: int | None
    head_hash: str
    label: str = ""


@dataclass(frozen=True)
class LedgerVerification:
    """The result of recomputing the chain: intact, or the first broken link with what was expected.

    ``checked`` counts the events this run verified; ``event_count`` is the position of the last verified
    event in the whole chain (the two differ when the run started from an anchored head).
    """

    checked: int
    head_hash: str
    broken_event_id: int | None = None
    expected_hash: str = ""
    found_hash: str = ""
    problem: str = ""
    last_event_id: int | None = None
    event_count: int | None = None
    heads_compared: int = 0
    failed_head: LedgerHead | None = None

    def __post_init__(self) -> None:
        if self.event_count is None:
            object.__setattr__(self, "event_count", self.checked)

    @property
    def intact(self) -> bool:
        return not self.problem

    @property
    def head(self) -> LedgerHead:
        assert self.event_count is not None, "__post_init__ fills it"
        return LedgerHead(event_count=self.event_count, last_event_id=self.last_event_id, head_hash=self.head_hash)


LINK_PROBLEM = (
    "previous_hash does not match the hash of the event before it (an event was removed, inserted or reordered)"
)
CONTENT_PROBLEM = "the event's content does not match its hash (the event was altered)"
SEAL_PROBLEM = (
    "forged or re-sealed: the event's seal is not this deployment's HMAC of its hash "
    "(an event written without the ledger key, or a key other than this deployment's)"
)


def _stream_events(batch_size: int, *, after_id: int | None = None) -> Iterator[tuple]:
    events = DecisionEvent.objects.order_by("id")
    if after_id is not None:
        events = events.filter(id__gt=after_id)
    yield from events.values_list(*_EVENT_COLUMNS).iterator(chunk_size=batch_size)


def _walk(
    rows: Iterable[tuple], *, expected_previous: str, position: int, heads: Sequence[LedgerHead] = ()
) -> LedgerVerification:
    """Verify rows in chain order from ``position`` (events before them), comparing each recorded head on the way.

    ``heads`` are sorted by event count; a head is compared when the walk reaches its position, and a head the
    walk never reaches means the chain lost events from its end.
    """
    key = ledger_key()
    start = position
    last_event_id = None
    pending = iter(heads)
    head = next(pending, None)
    compared = 0
    while head is not None and head.event_count <= position:
        # Heads of an empty chain (or, for a walk from an anchor, at or before it) hold by construction here.
        compared += 1
        head = next(pending, None)

    def broken(event_id: int | None, expected: str, found: str, problem: str, failed: LedgerHead | None = None):
        return LedgerVerification(
            checked=position - start,
            head_hash=expected_previous,
            broken_event_id=event_id,
            expected_hash=expected,
            found_hash=found,
            problem=problem,
            last_event_id=last_event_id,
            event_count=position,
            heads_compared=compared,
            failed_head=failed,
        )

    for row in rows:
        event_id, kind, actor_id, actor_label, object_type, object_id, payload, created_at, prev, found, seal = row
        if prev != expected_previous:
            return broken(event_id, expected_previous, prev, LINK_PROBLEM)
        recomputed = event_hash(
            previous_hash=prev,
            event_type=kind,
            actor_id=actor_id,
            actor_label=actor_label,
            object_type=object_type,
            object_id=object_id,
            payload=payload,
            created_at=created_at,
        )
        if recomputed != found:
            return broken(event_id, recomputed, found, CONTENT_PROBLEM)
        if not hmac.compare_digest(event_seal(found, key=key), seal):
            return broken(event_id, found, found, SEAL_PROBLEM)
        while head is not None and head.event_count == position + 1:
            if head.last_event_id != event_id or head.head_hash != found:
                return broken(
                    event_id,
                    head.head_hash,
                    found,
                    f"{head.label or 'a recorded head'} recorded event {head.event_count} of the chain as "
                    f"#{head.last_event_id} with hash {head.head_hash}; it is now #{event_id} with hash {found} "
                    "(events up to it were removed, inserted or rewritten since)",
                    head,
                )
            compared += 1
            head = next(pending, None)
        expected_previous = found
        last_event_id = event_id
        position += 1
    if head is not None:
        return broken(
            head.last_event_id,
            head.head_hash,
            "",
            f"{head.label or 'a recorded head'} recorded {head.event_count} events ending at "
            f"#{head.last_event_id}; the chain now has {position} (events were removed from its end)",
            head,
        )
    return LedgerVerification(
        checked=position - start,
        head_hash=expected_previous,
        last_event_id=last_event_id,
        event_count=position,
        heads_compared=compared,
    )


def ledger_verify(*, batch_size: int = 5000, heads: Iterable[LedgerHead] = ()) -> LedgerVerification:
    """Recompute every link and seal in id order, streaming rows; report the first one that does not hold.

    Every head in ``heads`` (recorded by earlier verifications or anchors) must still be in the chain at its
    position with its hash: a chain cut short, or rewritten from some point on, fails at that head.
    """
    ordered = sorted(heads, key=lambda head: head.event_count)
    return _walk(_stream_events(batch_size), expected_previous=GENESIS_HASH, position=0, heads=ordered)


def ledger_head_signature(head: LedgerHead) -> str:
    """The signature a verification records with its head, so a head inserted or edited in the database shows."""
    return ledger_mac(
        canonical_json(
            {"event_count": head.event_count, "last_event_id": head.last_event_id, "head_hash": head.head_hash}
        )
    )


def ledger_head_problem(head: LedgerHead) -> str:
    """Why ``head`` no longer holds (empty when it does): its event, hash, seal and position, in three queries."""
    if head.event_count == 0:
        return ""
    row = (
        DecisionEvent.objects.filter(pk=head.last_event_id).values_list("hash", "seal").first()
        if head.last_event_id is not None
        else None
    )
    label = head.label or "the recorded head"
    if row is None:
        return f"{label} ends at event #{head.last_event_id}, which is no longer in the chain (events were removed)"
    found, seal = row
    if found != head.head_hash:
        return f"{label} recorded hash {head.head_hash} for event #{head.last_event_id}; it now has {found}"
    if not hmac.compare_digest(event_seal(found), seal):
        return f"event #{head.last_event_id}: {SEAL_PROBLEM}"
    position = DecisionEvent.objects.filter(id__lte=head.last_event_id).count()
    if position != head.event_count:
        return (
            f"{label} recorded event #{head.last_event_id} as event {head.event_count} of the chain; it is now "
            f"event {position} (events before it were removed or inserted)"
        )
    return ""


def ledger_verify_since(*, head: LedgerHead, batch_size: int = 5000) -> LedgerVerification:
    """Verify only the events after an anchored head, once the head itself still holds.

    What the anchor task runs every minute: it never rehashes the events the head already covers. A change
    before the head that keeps its hash, seal and position (which needs the key) is left to full verifications.
    """
    problem = ledger_head_problem(head)
    if problem:
        return LedgerVerification(
            checked=0,
            head_hash=head.head_hash,
            broken_event_id=head.last_event_id,
            expected_hash=head.head_hash,
            problem=problem,
            event_count=head.event_count,
            failed_head=head,
        )
    return _walk(
        _stream_events(batch_size, after_id=head.last_event_id),
        expected_previous=head.head_hash if head.event_count else GENESIS_HASH,
        position=head.event_count,
    )


class PriorHash(TypedDict):
    prior_hash: str


if TYPE_CHECKING:
    # An event annotated by ``ledger_with_prior_hash``.
    EventWithPriorHash = WithAnnotations[DecisionEvent, PriorHash]


def ledger_with_prior_hash(queryset: QuerySet[DecisionEvent]) -> "QuerySet[EventWithPriorHash]":
    """Annotate each event with the hash of the event just before it by id (GENESIS_HASH for the first).

    One query for any number of events: ids have gaps on PostgreSQL (rolled-back sequence values), so "the
    event before" is the greatest smaller id, found by a backward primary-key index scan per event.
    """
    before = DecisionEvent.objects.filter(id__lt=OuterRef("id")).order_by("-id").values("hash")[:1]
    return queryset.annotate(prior_hash=Coalesce(Subquery(before), Value(GENESIS_HASH)))


@dataclass(frozen=True)
class EventCheck:
    """One event verified on its own: its content against its hash, its seal, and its link to the event before."""

    event: DecisionEvent
    recomputed_hash: str
    prior_hash: str
    expected_seal: str

    @property
    def content_intact(self) -> bool:
        return self.recomputed_hash == self.event.hash

    @property
    def link_intact(self) -> bool:
        return self.prior_hash == self.event.previous_hash

    @property
    def seal_intact(self) -> bool:
        return hmac.compare_digest(self.expected_seal, self.event.seal)

    @property
    def intact(self) -> bool:
        return self.content_intact and self.link_intact and self.seal_intact


def ledger_check_events(events: Iterable["EventWithPriorHash"]) -> list[EventCheck]:
    """Verify events annotated by ``ledger_with_prior_hash``: recompute each hash and seal, compare each link."""
    key = ledger_key()
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
            expected_seal=event_seal(event.hash, key=key),
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
