"""The human-verified training data of a model: what retraining learns from and what ML engineers export.

A case is training data when a human decided it (consensus or adjudication; an upheld appeal is an adjudication)
and it still has its features (the retention purge empties them). Its label is the reported outcome where one was
reported (what really happened beats what anyone decided), else the human final label. Gold copies, made to
measure reviewers, never count. One query, streamed in id order, so a million cases never sit in memory at once.

On PostgreSQL the export does not read the cases into Python: ``training_csv_copy_sql`` (streamed by COPY,
``training_data_copied``) and ``training_jsonl_query`` (through a server-side cursor, ``training_data_lines``)
have the database write every row's finished text, the very bytes the Python writer of
``audits.services.training_data`` writes (a test compares them). A value SQL cannot write exactly as Python does
leaves its whole row to the Python writer: an object or a list among the features or sensitive attributes, a
feature the schema does not name, features or attributes that are not an object, a number Python would write
otherwise (from 10^15 on PostgreSQL's shortest text of a double can differ from Python's; a text of hundreds of
digits may underflow, which PostgreSQL refuses), a CSV text cell that begins with FALLBACK_MARK. Such a row
carries the case's fields as JSON after FALLBACK_MARK (in one CSV cell, or as the JSON line), which
``training_case_from_fallback`` reads back into the dictionary ``training_cases`` gives.
"""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Case, CharField, F, Field, Model, Q, QuerySet, Value, When
from psycopg import sql

from hitl_platform.db import column_of
from hitl_platform.spreadsheet import FORMULA_TRIGGERS
from models_registry.models import ModelVersion
from reviews.choices import DecisionSource
from reviews.models import Decision, Prediction

HUMAN_DECISION_SOURCES = (DecisionSource.CONSENSUS, DecisionSource.ADJUDICATION)
# Where a case's training label came from.
LABEL_FROM_OUTCOME = "outcome"
LABEL_FROM_DECISION = "decision"
TRAINING_FIELDS = (
    "id",
    "external_id",
    "features",
    "training_label",
    "label_from",
    "final_label",
    "decision_source",
    "outcome_label",
    "version_number",
    "decided_at",
    "sensitive_attributes",
)


@dataclass(frozen=True)
class TrainingDataFilter:
    """Which human-decided cases: the model's, received in [since, until), decided by the given sources."""

    model_id: int
    since: datetime | None = None
    until: datetime | None = None
    sources: tuple[str, ...] = HUMAN_DECISION_SOURCES


def training_cases(data_filter: TrainingDataFilter) -> QuerySet:
    """The cases as dictionaries of ``TRAINING_FIELDS``, oldest first; iterate with ``.iterator(chunk_size=...)``."""
    cases = Prediction.objects.filter(
        model_id=data_filter.model_id,
        is_gold=False,
        decision__source__in=data_filter.sources,
    ).exclude(features={})
    if data_filter.since is not None:
        cases = cases.filter(created_at__gte=data_filter.since)
    if data_filter.until is not None:
        cases = cases.filter(created_at__lt=data_filter.until)
    reported = ~Q(outcome_label="")
    return (
        cases.annotate(
            training_label=Case(When(reported, then=F("outcome_label")), default=F("decision__final_label")),
            label_from=Case(
                When(reported, then=Value(LABEL_FROM_OUTCOME)),
                default=Value(LABEL_FROM_DECISION),
                output_field=CharField(),
            ),
            final_label=F("decision__final_label"),
            decision_source=F("decision__source"),
            version_number=F("version__number"),
            decided_at=F("decision__decided_at"),
        )
        .order_by("id")
        .values(*TRAINING_FIELDS)
    )


# Starts what SQL leaves to Python: a control character no text cell may begin with and JSON text never holds raw.
FALLBACK_MARK = "\x01"
# csv_writer's neutralising prefix (hitl_platform.spreadsheet.csv_cell).
FORMULA_PREFIX = "'"
# What the JSON Lines of the Python writer encode keys and constants with.
_JSON = json.JSONEncoder(ensure_ascii=False)


def _column(alias: str, model: type[Model], field: str) -> sql.Identifier:
    model_field = model._meta.get_field(field)
    assert isinstance(model_field, Field), f"{field} is a relation's reverse side, which has no column"
    return sql.Identifier(alias, column_of(model_field))


def _p(field: str) -> sql.Identifier:
    return _column("p", Prediction, field)


def _d(field: str) -> sql.Identifier:
    return _column("d", Decision, field)


def _v(field: str) -> sql.Identifier:
    return _column("v", ModelVersion, field)


def _training_label() -> sql.Composable:
    return sql.SQL("CASE WHEN {outcome} <> '' THEN {outcome} ELSE {final} END").format(
        outcome=_p("outcome_label"), final=_d("final_label")
    )


def _label_from(outcome: sql.Composable, decision: sql.Composable) -> sql.Composable:
    return sql.SQL("CASE WHEN {} <> '' THEN {} ELSE {} END").format(_p("outcome_label"), outcome, decision)


def _iso_datetime(value: sql.Composable) -> sql.Composable:
    """``datetime.isoformat()`` of an aware UTC datetime: microseconds only when there are some."""
    return sql.SQL("replace(to_char({} AT TIME ZONE 'UTC', {}), '.000000', '') || '+00:00'").format(
        value, sql.Literal('YYYY-MM-DD"T"HH24:MI:SS.US')
    )


def _python_number(text: sql.Composable) -> sql.Composable:
    """The JSON number ``text`` (a jsonb number's text) as Python writes the value ``json.loads`` makes of it: an
    int as it is, a float as its ``repr``; NULL where that cannot be done exactly here (see the module's docstring).

    PostgreSQL writes a double's shortest round-trip digits as Python's ``repr`` does, in the same exponent form
    below 10^-4; from there to 10^15 it writes fixed notation too, without Python's ``.0`` on whole values. A text
    of fifteen nines before the point may round to 10^15, which PostgreSQL writes ``1e+15``: Python it is left to.
    """
    shortest = sql.SQL("({}::float8::text)").format(text)
    return sql.SQL(
        "CASE WHEN strpos({t}, '.') = 0 THEN {t}"
        " WHEN length({t}) > 300 OR strpos(ltrim({t}, '-'), '.') > 16"
        " OR ltrim({t}, '-') LIKE '999999999999999.%' THEN NULL"
        " ELSE CASE WHEN strpos({s}, '.') > 0 OR strpos({s}, 'e') > 0 THEN {s} ELSE {s} || '.0' END END"
    ).format(t=text, s=shortest)


def _case_json(*, include_sensitive: bool) -> sql.Composable:
    """The case's fields as ``training_cases`` names them, as JSON text (decided_at in ISO 8601)."""
    values = {
        "id": _p("id"),
        "external_id": _p("external_id"),
        "features": _p("features"),
        "training_label": _training_label(),
        "label_from": _label_from(sql.Literal(LABEL_FROM_OUTCOME), sql.Literal(LABEL_FROM_DECISION)),
        "final_label": _d("final_label"),
        "decision_source": _d("source"),
        "outcome_label": _p("outcome_label"),
        "version_number": _v("number"),
        "decided_at": _iso_datetime(_d("decided_at")),
        "sensitive_attributes": _p("sensitive_attributes"),
    }
    fields = [name for name in TRAINING_FIELDS if include_sensitive or name != "sensitive_attributes"]
    return sql.SQL("json_build_object({})::text").format(
        sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(name), values[name]) for name in fields)
    )


def training_case_from_fallback(text: str) -> dict[str, Any]:
    """The dictionary ``training_cases`` gives for a row the database left to Python (the JSON after the mark)."""
    case = json.loads(text)
    case["decided_at"] = datetime.fromisoformat(case["decided_at"])
    return case


def _training_data_query(data_filter: TrainingDataFilter, columns: sql.Composable) -> sql.Composed:
    """``columns`` of the cases ``training_cases`` reads, in the same order, as one SELECT."""
    conditions = [
        sql.SQL("{} = ANY({}::text[])").format(_d("source"), sql.Literal([str(s) for s in data_filter.sources])),
        sql.SQL("NOT {}").format(_p("is_gold")),
        sql.SQL("{} = {}").format(_p("model"), sql.Literal(data_filter.model_id)),
        sql.SQL("{} <> '{{}}'::jsonb").format(_p("features")),
    ]
    if data_filter.since is not None:
        conditions.append(sql.SQL("{} >= {}").format(_p("created_at"), sql.Literal(data_filter.since)))
    if data_filter.until is not None:
        conditions.append(sql.SQL("{} < {}").format(_p("created_at"), sql.Literal(data_filter.until)))
    return sql.SQL(
        "SELECT {columns} FROM {predictions} AS p"
        " JOIN {decisions} AS d ON {decision_case} = {case_id}"
        " JOIN {versions} AS v ON {version_id} = {case_version}"
        " WHERE {conditions} ORDER BY {case_id}"
    ).format(
        columns=columns,
        predictions=sql.Identifier(Prediction._meta.db_table),
        decisions=sql.Identifier(Decision._meta.db_table),
        versions=sql.Identifier(ModelVersion._meta.db_table),
        decision_case=_d("prediction"),
        case_id=_p("id"),
        version_id=_v("id"),
        case_version=_p("version"),
        conditions=sql.SQL(" AND ").join(conditions),
    )


def _not_an_object(value: sql.Composable, *, or_null: bool = False) -> sql.Composable:
    kinds = ("object", "null") if or_null else ("object",)
    return sql.SQL("jsonb_typeof({}) NOT IN ({})").format(value, sql.SQL(", ").join(map(sql.Literal, kinds)))


def _has_unnamed_features(feature_names: Sequence[str]) -> sql.Composable:
    return sql.SQL("{} - {}::text[] <> '{{}}'::jsonb").format(_p("features"), sql.Literal(sorted(set(feature_names))))


class _CsvCells:
    """The SQL of the CSV's cells as ``csv_writer`` writes them, before COPY's CSV quoting (the same as csv's):
    NULL for an empty cell, since COPY quotes an empty string; the fallback cell where Python must write the row."""

    def __init__(self, *, include_sensitive: bool):
        self.fallback = sql.SQL("{} || {}").format(
            sql.Literal(FALLBACK_MARK), _case_json(include_sensitive=include_sensitive)
        )

    def text(self, value: sql.Composable) -> sql.Composable:
        prefixed = sql.SQL("{} || {}").format(sql.Literal(FORMULA_PREFIX), value)
        neutralised = sql.SQL(" ").join(
            sql.SQL("WHEN {} THEN {}").format(sql.Literal(ord(trigger)), prefixed) for trigger in FORMULA_TRIGGERS
        )
        return sql.SQL(
            "CASE ascii({value}) WHEN 0 THEN NULL WHEN {mark} THEN {fallback} {neutralised} ELSE {value} END"
        ).format(value=value, mark=sql.Literal(ord(FALLBACK_MARK)), fallback=self.fallback, neutralised=neutralised)

    def json_value(self, document: sql.Composable, key: str) -> sql.Composable:
        """The document's value at ``key`` as the Python writer's cell: a text, a number, True or False, empty."""
        value = sql.SQL("({} -> {})").format(document, sql.Literal(key))
        text = sql.SQL("({} ->> {})").format(document, sql.Literal(key))
        return sql.SQL(
            "CASE jsonb_typeof({value}) WHEN 'string' THEN {string} WHEN 'number' THEN coalesce({number}, {fallback})"
            " WHEN 'boolean' THEN CASE WHEN {text} = 'true' THEN 'True' ELSE 'False' END"
            " WHEN 'object' THEN {fallback} WHEN 'array' THEN {fallback} END"
        ).format(
            value=value,
            text=text,
            string=self.text(text),
            number=_python_number(text),
            fallback=self.fallback,
        )


def training_csv_copy_sql(
    data_filter: TrainingDataFilter, *, feature_names: Sequence[str], sensitive_names: Sequence[str] = ()
) -> sql.Composed:
    """COPY of the CSV's rows (the header is not in it), each ended by a bare newline, as COPY writes."""
    query = training_csv_query(data_filter, feature_names=feature_names, sensitive_names=sensitive_names)
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER false)").format(query)


def training_csv_query(
    data_filter: TrainingDataFilter, *, feature_names: Sequence[str], sensitive_names: Sequence[str] = ()
) -> sql.Composed:
    """The CSV's cells in the columns of the Python writer: case_id, prediction_id, a cell per feature name,
    other_features, label, label_from, final_label, source, outcome, version, decided_at, and a cell per sensitive
    attribute name."""
    cells = _CsvCells(include_sensitive=bool(sensitive_names))
    features, attributes = _p("features"), _p("sensitive_attributes")
    columns = [
        cells.text(_p("external_id")),
        _p("id"),
        *(cells.json_value(features, name) for name in feature_names),
        sql.SQL("CASE WHEN {} THEN {fallback} WHEN {} THEN {fallback} END").format(
            _not_an_object(features), _has_unnamed_features(feature_names), fallback=cells.fallback
        ),
        sql.SQL("CASE WHEN {} <> '' THEN {} ELSE {} END").format(
            _p("outcome_label"), cells.text(_p("outcome_label")), cells.text(_d("final_label"))
        ),
        _label_from(cells.text(sql.Literal(LABEL_FROM_OUTCOME)), cells.text(sql.Literal(LABEL_FROM_DECISION))),
        cells.text(_d("final_label")),
        cells.text(_d("source")),
        cells.text(_p("outcome_label")),
        _v("number"),
        _iso_datetime(_d("decided_at")),
    ]
    attribute_cells = [cells.json_value(attributes, name) for name in sensitive_names]
    if attribute_cells:
        attribute_cells[0] = sql.SQL("CASE WHEN {} THEN {} ELSE {} END").format(
            _not_an_object(attributes, or_null=True), cells.fallback, attribute_cells[0]
        )
    return _training_data_query(data_filter, sql.SQL(", ").join([*columns, *attribute_cells]))


def _json_value(value: sql.Composable) -> sql.Composable:
    """A jsonb value as the Python writer's JSON text; NULL for an object or a list, and where numbers must."""
    return sql.SQL(
        "CASE jsonb_typeof({v}) WHEN 'number' THEN {number} WHEN 'object' THEN NULL WHEN 'array' THEN NULL"
        " ELSE {v}::text END"
    ).format(v=value, number=_python_number(sql.SQL("({}::text)").format(value)))


def _json_key(key: str, *, first: bool = False) -> sql.Literal:
    return sql.Literal(("" if first else ", ") + _JSON.encode(key) + ": ")


def _json_text(value: sql.Composable) -> sql.Composable:
    return sql.SQL("to_json({})::text").format(value)


def training_jsonl_query(
    data_filter: TrainingDataFilter, *, feature_names: Sequence[str], sensitive_names: Sequence[str] = ()
) -> sql.Composed:
    """The JSON line of the Python writer (without its newline), one column: case_id, prediction_id, features (the
    object, keys in jsonb's order, as json.loads gives them), label, label_from, final_label, source, outcome,
    version, decided_at, and sensitive (an object of the named attributes) when some are named; or, for a row left
    to Python, FALLBACK_MARK and the case's fields. JSON text holds no raw control character, so the mark starts
    nothing else."""
    features, attributes = _p("features"), _p("sensitive_attributes")
    # jsonb keeps an object's keys shortest first, then in byte order: the order its text, so json.loads, has.
    in_jsonb_order = sorted(set(feature_names), key=lambda name: (len(name.encode()), name.encode()))
    present = [
        sql.SQL("CASE WHEN {v} IS NULL THEN '' ELSE {key} || {value} END").format(
            v=value, key=_json_key(name), value=_json_value(value)
        )
        for name, value in (
            (name, sql.SQL("({} -> {})").format(features, sql.Literal(name))) for name in in_jsonb_order
        )
    ]
    pieces = [
        sql.Literal("{"),
        _json_key("case_id", first=True),
        _json_text(_p("external_id")),
        _json_key("prediction_id"),
        sql.SQL("{}::text").format(_p("id")),
        _json_key("features"),
        sql.SQL("'{{' || substr({}, 3) || '}}'").format(sql.SQL(" || ").join(present) if present else sql.Literal("")),
        _json_key("label"),
        _json_text(_training_label()),
        _json_key("label_from"),
        _label_from(sql.Literal(_JSON.encode(LABEL_FROM_OUTCOME)), sql.Literal(_JSON.encode(LABEL_FROM_DECISION))),
        _json_key("final_label"),
        _json_text(_d("final_label")),
        _json_key("source"),
        _json_text(_d("source")),
        _json_key("outcome"),
        _json_text(_p("outcome_label")),
        _json_key("version"),
        sql.SQL("{}::text").format(_v("number")),
        _json_key("decided_at"),
        # An ISO 8601 text holds nothing JSON escapes.
        sql.SQL("""'"' || {} || '"'""").format(_iso_datetime(_d("decided_at"))),
    ]
    unwritable = [_not_an_object(features), _has_unnamed_features(feature_names)]
    if sensitive_names:
        values = [sql.SQL("({} -> {})").format(attributes, sql.Literal(name)) for name in sensitive_names]
        pieces.append(_json_key("sensitive"))
        pieces.append(sql.Literal("{"))
        for index, (name, value) in enumerate(zip(sensitive_names, values, strict=True)):
            pieces.append(_json_key(name, first=index == 0))
            pieces.append(
                sql.SQL("CASE WHEN {v} IS NULL THEN 'null' ELSE {value} END").format(v=value, value=_json_value(value))
            )
        pieces.append(sql.Literal("}"))
        unwritable.append(_not_an_object(attributes, or_null=True))
    pieces.append(sql.Literal("}"))
    line = sql.SQL("CASE {} ELSE {} END").format(
        sql.SQL(" ").join(sql.SQL("WHEN {} THEN NULL").format(condition) for condition in unwritable),
        sql.SQL(" || ").join(pieces),
    )
    row = sql.SQL("coalesce({}, {} || {})").format(
        line, sql.Literal(FALLBACK_MARK), _case_json(include_sensitive=bool(sensitive_names))
    )
    return _training_data_query(data_filter, row)


# For the export's transaction only, whatever the server's settings: a double's text is the shortest that reads
# back as the same double, as Python's repr writes it; and no JIT, which spent 2 to 4 s compiling the rows'
# expressions before the first row of a million-row export, to end no sooner.
EXPORT_SETTINGS = "SELECT set_config('extra_float_digits', '1', true), set_config('jit', 'off', true)"


def training_data_copied(statement: sql.Composable, *, rows_per_chunk: int) -> Iterator[list[memoryview]]:
    """The rows of a ``training_csv_copy_sql`` COPY, as they arrive, in lists of ``rows_per_chunk``: PostgreSQL
    sends COPY's output one row per message, newline included. Run it inside a transaction."""
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.cursor.execute(EXPORT_SETTINGS)
        with cursor.cursor.copy(statement) as copy:
            rows = []
            for row in copy:
                rows.append(row)
                if len(rows) == rows_per_chunk:
                    yield rows
                    rows = []
            if rows:
                yield rows


def training_data_lines(query: sql.Composable, *, rows_per_chunk: int) -> Iterator[list[str]]:
    """The texts of a one-column query (``training_jsonl_query``) through a server-side cursor, ``rows_per_chunk``
    at a time. Run it inside a transaction.

    Not COPY, as for CSV: its text format would double every backslash of the JSON, and reading a row at a time
    cost the serving process five times the CPU of these fetches, for no shorter export."""
    with connection.cursor() as settings:
        # Not through the server-side cursor, which would only declare it.
        settings.execute(EXPORT_SETTINGS)
    with connection.chunked_cursor() as cursor, connection.wrap_database_errors:
        cursor.cursor.execute(query)
        while rows := cursor.cursor.fetchmany(rows_per_chunk):
            yield [line for (line,) in rows]
