"""The training-data export: a model's human-verified cases streamed as CSV or JSON Lines to its engineers.

Only the people who work on a model (its owner, its team, administrators) export its training data. The rows come
from ``audits.selectors.training_data`` in one streamed query, written and sent in chunks of ``CHUNK_ROWS``, so a
million rows never sit in memory at once. On PostgreSQL the database writes the rows' text itself, the very
bytes of the Python writer below, which SQLite's embedded mode uses and which writes the few rows SQL leaves to it.

Sensitive attributes stay out unless asked for by someone who may see them; such an export is sealed in the ledger
(``training_data.exported``) before its first byte is sent, with its filters, format and columns: its row count is
only known once the stream ends, and is logged then.

Who may see sensitive attributes: the platform has no permission of their own (no page or API shows them, case by
case, to anyone). The export reuses ``audits.run_biasaudit``, the right to audit any model, that is to have every
case's sensitive attributes read into groups: compliance officers and administrators hold it, ML engineers do not,
so an engineer includes them only with an administrator's grant made on purpose.
"""

import csv
import io
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction

from audits.events import LedgerEvent
from audits.ledger import ledger_append
from audits.selectors.training_data import (
    FALLBACK_MARK,
    HUMAN_DECISION_SOURCES,
    TRAINING_FIELDS,
    TrainingDataFilter,
    training_case_from_fallback,
    training_cases,
    training_csv_copy_sql,
    training_data_copied,
    training_data_lines,
    training_jsonl_query,
)
from hitl_platform.spreadsheet import csv_writer
from models_registry.models import MLModel
from models_registry.scoring import feature_columns
from models_registry.selectors import user_may_write_model

logger = logging.getLogger(__name__)

CSV = "csv"
JSONL = "jsonl"
TRAINING_DATA_FORMATS = (CSV, JSONL)
CONTENT_TYPES = {CSV: "text/csv; charset=utf-8", JSONL: "application/jsonl; charset=utf-8"}
SENSITIVE_ATTRIBUTES_PERMISSION = "audits.run_biasaudit"
CHUNK_ROWS = 2000

# The CSV's columns around the features: (column, selector field).
CASE_COLUMNS = (("case_id", "external_id"), ("prediction_id", "id"))
LABEL_COLUMNS = (
    ("label", "training_label"),
    ("label_from", "label_from"),
    ("final_label", "final_label"),
    ("source", "decision_source"),
    ("outcome", "outcome_label"),
    ("version", "version_number"),
    ("decided_at", "decided_at"),
)
# Features an old case holds that today's schema does not name, as one JSON object: none is silently dropped.
OTHER_FEATURES_COLUMN = "other_features"
FEATURE_PREFIX = "feature."
JSONL_KEYS = ("case_id", "prediction_id", "features", *(column for column, _ in LABEL_COLUMNS))
SENSITIVE_PREFIX = "sensitive."


@dataclass(frozen=True)
class TrainingDataExport:
    """What the view sends: the file's name and type, and its bytes, produced as they are read."""

    filename: str
    content_type: str
    chunks: Iterator[bytes]


def may_export_sensitive_attributes(user: User) -> bool:
    """Whether ``user`` may have the cases' sensitive attributes in an export (see the module's docstring)."""
    return user.is_active and user.has_perm(SENSITIVE_ATTRIBUTES_PERMISSION)


def training_feature_names(model: MLModel) -> list[str]:
    """The model's features in its declared order (``x-feature-order``, else a ``required`` list naming them all,
    as scoring reads it), then any other property by name: jsonb keeps no key order of ``properties``."""
    declared = feature_columns(model) or []
    properties = (model.feature_schema or {}).get("properties") or {}
    return [*declared, *sorted(str(name) for name in properties if name not in declared)]


def training_data_export(
    *,
    actor: User,
    model: MLModel,
    format: str = CSV,
    since: datetime | None = None,
    until: datetime | None = None,
    sources: Sequence[str] | None = None,
    include_sensitive: bool = False,
) -> TrainingDataExport:
    """Check the request, seal it in the ledger when it carries sensitive attributes, and return the stream.

    Raises PermissionDenied (with the reason) for someone who does not work on the model or may not see its
    sensitive attributes, and ValidationError with field errors for a format, source or period that cannot be
    exported. Nothing is read until the stream is.
    """
    if not user_may_write_model(actor, model):
        raise PermissionDenied(
            f"Only the owner of {model.name}, its team and administrators may export its training data."
        )
    chosen_sources = tuple(str(source) for source in (HUMAN_DECISION_SOURCES if sources is None else sources))
    errors: dict[str, list[str]] = {}
    if format not in TRAINING_DATA_FORMATS:
        errors["format"] = [f"Choose one of {', '.join(TRAINING_DATA_FORMATS)}."]
    if not chosen_sources:
        errors["sources"] = [f"Choose at least one of {', '.join(HUMAN_DECISION_SOURCES)}."]
    elif unknown := sorted(set(chosen_sources) - set(HUMAN_DECISION_SOURCES)):
        errors["sources"] = [
            f"Training data is decided by humans only: {', '.join(unknown)} is not one of "
            f"{', '.join(HUMAN_DECISION_SOURCES)}."
        ]
    if since is not None and until is not None and since >= until:
        errors["until"] = ["The period must end after it starts."]
    if errors:
        raise ValidationError(errors)
    if include_sensitive and not may_export_sensitive_attributes(actor):
        raise PermissionDenied(
            "You may not see sensitive attributes: including them needs the permission to audit any model "
            f"({SENSITIVE_ATTRIBUTES_PERMISSION}). Leave include_sensitive out to export without them."
        )
    data_filter = TrainingDataFilter(model_id=model.pk, since=since, until=until, sources=chosen_sources)
    writer = _RowWriter(model, include_sensitive=include_sensitive)
    if include_sensitive:
        ledger_append(
            event_type=LedgerEvent.TRAINING_DATA_EXPORTED,
            object_type="models_registry.mlmodel",
            object_id=model.pk,
            actor=actor,
            payload={
                "model": model.name,
                "format": format,
                "filters": {
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                    "sources": list(chosen_sources),
                },
                "included_fields": writer.fields(format),
                "sensitive_attributes": list(writer.sensitive_names),
            },
        )
    return TrainingDataExport(
        filename=f"{model.name}-training-data.{format}",
        content_type=CONTENT_TYPES[format],
        chunks=_stream(
            data_filter, writer=writer, format=format, model=model, actor=actor, include_sensitive=include_sensitive
        ),
    )


def database_writes_rows() -> bool:
    """Whether the database writes the rows' text (PostgreSQL): reading a million rows into Python objects and
    writing them out again costs more than the whole export may take."""
    return connection.vendor == "postgresql"


def _stream(
    data_filter: TrainingDataFilter,
    *,
    writer: "_RowWriter",
    format: str,
    model: MLModel,
    actor: User,
    include_sensitive: bool,
) -> Iterator[bytes]:
    written = 0
    # One transaction for the whole read: every row from one snapshot, a server-side cursor that streams (where
    # outside one PostgreSQL would build the whole result before the first row), and the database's settings for
    # the export (EXPORT_SETTINGS) end with it.
    with transaction.atomic():
        if format == CSV:
            yield writer.csv_header()
        if database_writes_rows() and format == CSV:
            statement = training_csv_copy_sql(
                data_filter, feature_names=writer.feature_names, sensitive_names=writer.sensitive_names
            )
            for copied in training_data_copied(statement, rows_per_chunk=CHUNK_ROWS):
                yield writer.copied_csv_chunk(copied)
                written += len(copied)
        elif database_writes_rows():
            query = training_jsonl_query(
                data_filter, feature_names=writer.feature_names, sensitive_names=writer.sensitive_names
            )
            for lines in training_data_lines(query, rows_per_chunk=CHUNK_ROWS):
                yield writer.written_jsonl_chunk(lines)
                written += len(lines)
        else:
            cases = training_cases(data_filter)
            if not include_sensitive:
                # Personal data the export will not write is not read either.
                cases = cases.values(*(name for name in TRAINING_FIELDS if name != "sensitive_attributes"))
            write_chunk = writer.csv_chunk if format == CSV else writer.jsonl_chunk
            rows = cases.iterator(chunk_size=CHUNK_ROWS)
            while chunk := list(islice(rows, CHUNK_ROWS)):
                yield write_chunk(chunk)
                written += len(chunk)
    logger.info(
        "Training data of %s exported by %s: %d rows, %s, sensitive attributes %s.",
        model.name,
        actor.get_username(),
        written,
        format,
        "included" if include_sensitive else "left out",
    )


# Cells written as they are; anything else (an object, a list, a missing value) goes through ``_cell``.
PLAIN_CELL_TYPES = frozenset({str, int, float, bool})
CSV_LINE_END = b"\r\n"
MARK = FALLBACK_MARK.encode()
_JSON = json.JSONEncoder(ensure_ascii=False)
_SORTED_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)


def _cell(value: Any) -> Any:
    """A feature or attribute as one CSV cell: objects and lists as JSON text, a missing value empty."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return _SORTED_JSON.encode(value)
    return value


class _RowWriter:
    """Turns chunks of selector rows into bytes: CSV with a column per feature, or one JSON object per line.

    Called once per row of a million-row export, so the loops stay flat: no per-cell function call for the
    common plain values."""

    def __init__(self, model: MLModel, *, include_sensitive: bool):
        self.feature_names = training_feature_names(model)
        self.sensitive_names = list(model.sensitive_attributes or []) if include_sensitive else []
        self.columns = (
            *(column for column, _ in CASE_COLUMNS),
            *(FEATURE_PREFIX + name for name in self.feature_names),
            OTHER_FEATURES_COLUMN,
            *(column for column, _ in LABEL_COLUMNS),
            *(SENSITIVE_PREFIX + name for name in self.sensitive_names),
        )
        self._known_features = frozenset(self.feature_names)
        self._buffer = io.StringIO()
        self._csv = csv_writer(self._buffer)

    def fields(self, format: str) -> list[str]:
        """The columns (CSV) or keys (JSON Lines) of every row, a sensitive attribute as ``sensitive.<name>``."""
        if format == CSV:
            return list(self.columns)
        return [*JSONL_KEYS, *(SENSITIVE_PREFIX + name for name in self.sensitive_names)]

    def _drain(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")

    def csv_header(self) -> bytes:
        self._csv.writerow(self.columns)
        return self._drain()

    def csv_chunk(self, cases: list[dict[str, Any]]) -> bytes:
        feature_names, known, sensitive_names = self.feature_names, self._known_features, self.sensitive_names
        plain = PLAIN_CELL_TYPES
        rows = []
        for case in cases:
            features = case["features"] or {}
            row = [case["external_id"], case["id"]]
            row += [value if value.__class__ in plain else _cell(value) for value in map(features.get, feature_names)]
            row.append(
                ""
                if known.issuperset(features)
                else _SORTED_JSON.encode({name: value for name, value in features.items() if name not in known})
            )
            decided_at = case["decided_at"]
            row += (
                case["training_label"],
                case["label_from"],
                case["final_label"],
                case["decision_source"],
                case["outcome_label"],
                case["version_number"],
                decided_at.isoformat() if decided_at else "",
            )
            if sensitive_names:
                attributes = case["sensitive_attributes"] or {}
                row += [
                    value if value.__class__ in plain else _cell(value)
                    for value in map(attributes.get, sensitive_names)
                ]
            rows.append(row)
        self._csv.writerows(rows)
        return self._drain()

    def copied_csv_chunk(self, rows: list[memoryview]) -> bytes:
        """COPY's CSV rows as csv_writer ends them (CRLF, where COPY writes LF), each row SQL left to Python
        written by ``csv_chunk``."""
        data = CSV_LINE_END.join([row[:-1] for row in rows]) + CSV_LINE_END
        if MARK not in data:
            return data
        return b"".join(self._copied_csv_row(bytes(row)) for row in rows)

    def _copied_csv_row(self, row: bytes) -> bytes:
        if MARK in row:
            # Any cell may carry the case; a mark inside a text (not at its start) is that text's own.
            for cell in next(csv.reader(io.StringIO(row.decode("utf-8"), newline=""))):
                if cell.startswith(FALLBACK_MARK):
                    return self.csv_chunk([training_case_from_fallback(cell[len(FALLBACK_MARK) :])])
        return row[:-1] + CSV_LINE_END

    def written_jsonl_chunk(self, lines: list[str]) -> bytes:
        """The JSON lines the database wrote, each it left to Python written by ``jsonl_chunk``."""
        text = "\n".join(lines) + "\n"
        if FALLBACK_MARK in text:
            return b"".join(
                self.jsonl_chunk([training_case_from_fallback(line[len(FALLBACK_MARK) :])])
                if line.startswith(FALLBACK_MARK)
                else (line + "\n").encode("utf-8")
                for line in lines
            )
        return text.encode("utf-8")

    def jsonl_chunk(self, cases: list[dict[str, Any]]) -> bytes:
        sensitive_names = self.sensitive_names
        encode = _JSON.encode
        lines = []
        for case in cases:
            decided_at = case["decided_at"]
            record = {
                "case_id": case["external_id"],
                "prediction_id": case["id"],
                "features": case["features"],
                "label": case["training_label"],
                "label_from": case["label_from"],
                "final_label": case["final_label"],
                "source": case["decision_source"],
                "outcome": case["outcome_label"],
                "version": case["version_number"],
                "decided_at": decided_at.isoformat() if decided_at else None,
            }
            if sensitive_names:
                attributes = case["sensitive_attributes"] or {}
                record["sensitive"] = {name: attributes.get(name) for name in sensitive_names}
            lines.append(encode(record))
        lines.append("")
        return "\n".join(lines).encode("utf-8")
