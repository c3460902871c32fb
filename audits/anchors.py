"""Signed ledger heads kept outside the database: anchors, and the sink they are appended to.

An anchor is one JSON line: the chain's event count, its last event's id and hash, when it was anchored, and
an HMAC-SHA256 of those under ``LEDGER_ANCHOR_KEY``. Someone who can rewrite the database, but neither holds
the key nor can rewrite the sink, cannot make a shortened or rewritten chain agree with the anchors.

The sink sits behind ``AnchorSink`` so that object storage (a bucket with object lock) can replace the file;
only the file sink exists: ``LEDGER_ANCHOR_URL`` is ``file:///path/anchors.jsonl`` or a bare path. Keep that
file append-only (``chattr +a``) and, ideally, on another host.
"""

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol, TypedDict
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audits.ledger import LedgerHead, canonical_json, ledger_mac, ledger_mac_valid

# Enough to hold the longest anchor line many times over: the newest anchor is read from the file's end.
_TAIL_BLOCK = 4096


class AnchorFormatError(ValueError):
    """A line of the sink that is not an anchor (edited, or cut short by a crash while it was written)."""


class _SignedFields(TypedDict):
    event_count: int
    last_event_id: int | None
    head_hash: str
    anchored_at: str


@dataclass(frozen=True)
class Anchor:
    """One signed head in the sink; ``number`` is its line (1-based), or 0 when read alone from the end."""

    event_count: int
    last_event_id: int | None
    head_hash: str
    anchored_at: str
    signature: str
    number: int = 0

    def _unsigned(self) -> _SignedFields:
        return {
            "event_count": self.event_count,
            "last_event_id": self.last_event_id,
            "head_hash": self.head_hash,
            "anchored_at": self.anchored_at,
        }

    @property
    def signature_valid(self) -> bool:
        return ledger_mac_valid(canonical_json(self._unsigned()), self.signature)

    @property
    def name(self) -> str:
        which = f"anchor {self.number}" if self.number else "the newest anchor"
        return f"{which} (anchored {self.anchored_at})"

    @property
    def head(self) -> LedgerHead:
        return LedgerHead(
            event_count=self.event_count, last_event_id=self.last_event_id, head_hash=self.head_hash, label=self.name
        )

    def as_line(self) -> str:
        return canonical_json({**self._unsigned(), "signature": self.signature})


def anchor_make(*, head: LedgerHead, at: datetime) -> Anchor:
    """A signed anchor of ``head``, stamped ``at``."""
    unsigned: _SignedFields = {
        "event_count": head.event_count,
        "last_event_id": head.last_event_id,
        "head_hash": head.head_hash,
        "anchored_at": at.isoformat(),
    }
    return Anchor(**unsigned, signature=ledger_mac(canonical_json(unsigned)))


def anchor_parse(line: str, *, number: int = 0) -> Anchor:
    """Read one sink line; raise ``AnchorFormatError`` naming the line if it is not an anchor."""
    where = f"line {number}" if number else "the last line"
    try:
        document = json.loads(line)
    except ValueError as exc:
        raise AnchorFormatError(f"{where} of the anchor sink is not JSON: {exc}") from exc
    fields: dict[str, type | tuple[type, ...]] = {
        "event_count": int,
        "last_event_id": (int, type(None)),
        "head_hash": str,
        "anchored_at": str,
        "signature": str,
    }
    if not isinstance(document, dict) or any(
        isinstance(document.get(name), bool) or not isinstance(document.get(name), kind)
        for name, kind in fields.items()
    ):
        raise AnchorFormatError(f"{where} of the anchor sink is not an anchor ({', '.join(fields)})")
    return Anchor(**{name: document[name] for name in fields}, number=number)


class AnchorSink(Protocol):
    """An append-only place outside the database for signed heads."""

    description: str

    def append(self, anchor: Anchor) -> None:
        """Add one anchor after the others; never rewrites what is there."""

    def anchors(self) -> Iterator[Anchor]:
        """Every anchor, oldest first; raises ``AnchorFormatError`` at a line that is not one."""

    def latest(self) -> Anchor | None:
        """The newest anchor, or None when there is none yet."""

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Serialise check-then-append across processes, so two anchor runs never interleave."""


class FileAnchorSink:
    """Anchors as JSON Lines in a local file (the folder is created on first use)."""

    def __init__(self, path: Path):
        self.path = path
        self.description = str(path)

    def _open_for_append(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def append(self, anchor: Anchor) -> None:
        descriptor = self._open_for_append()
        try:
            # One write of one line, with O_APPEND: lines from two writers never interleave.
            os.write(descriptor, (anchor.as_line() + "\n").encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def anchors(self) -> Iterator[Anchor]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield anchor_parse(line, number=number)

    def latest(self) -> Anchor | None:
        if not self.path.exists():
            return None
        with self.path.open("rb") as file:
            end = file.seek(0, os.SEEK_END)
            tail = b""
            position = end
            while position > 0:
                step = min(_TAIL_BLOCK, position)
                position -= step
                file.seek(position)
                tail = file.read(step) + tail
                if tail.rstrip(b"\n").count(b"\n") >= 1:
                    break
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return anchor_parse(last.decode("utf-8", errors="replace")) if last.strip() else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        descriptor = self._open_for_append()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def anchor_sink(url: str | None = None) -> AnchorSink:
    """The sink named by ``url`` (default ``LEDGER_ANCHOR_URL``): ``file:///path`` or a bare path."""
    url = settings.LEDGER_ANCHOR_URL if url is None else url
    if not url:
        raise ImproperlyConfigured("LEDGER_ANCHOR_URL is empty: the ledger's anchors have nowhere to go.")
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ImproperlyConfigured(f"LEDGER_ANCHOR_URL {url!r}: a file URL names a local path (file:///path).")
        return FileAnchorSink(Path(unquote(parsed.path)))
    if parsed.scheme == "":
        return FileAnchorSink(Path(url))
    raise ImproperlyConfigured(f"LEDGER_ANCHOR_URL {url!r}: only file:///path (or a bare path) is supported.")
