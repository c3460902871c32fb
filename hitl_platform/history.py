"""History rows of governed records, in one place, including where the platform writes them itself.

django-simple-history writes a history row when a model instance is saved, taking the acting user and the reason
from two attributes set before the save: ``historise`` sets them, and every service uses it.

Two hot paths bypass simple-history's save signals and write the same history rows themselves; they are here, so
"we bypass simple-history here" is known in one place:

- ``bulk_create_with_history_fast``: intake's bulk inserts. ``bulk_create_with_history`` builds a historical model
  instance per row and Django prepares every value through the field API before an array-based insert (see
  hitl_platform.db). On PostgreSQL this instead reserves the primary keys, streams the rows and their history rows
  with ``COPY``, and sets the keys on the objects, so callers get the same result: saved objects with ids, and one
  history row each with the acting user, the reason and the date. Values go to COPY as Python values psycopg
  adapts (str, int, float, bool, aware datetimes, UUIDs, None); JSON fields are encoded with the field's own
  encoder. A field needing another database preparation would have to be added to ``_converter``.
- ``history_insert_sql``: the claim-next statement (reviews.services.assignments) inserts the assignment's and the
  task's history rows as data-modifying CTEs of the same statement.
"""

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar, cast

import orjson
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection, models, transaction
from django.db.models import Model
from simple_history.utils import bulk_create_with_history, get_history_manager_for_model

from hitl_platform.db import column_of, copy_rows, reserve_ids

ModelT = TypeVar("ModelT", bound=Model)


class _HistoryStamped(Protocol):
    # The two attributes simple-history reads on save; they are not model fields, so no model class declares them.
    _history_user: User | None
    _change_reason: str


def historise(instance: Model, *, actor: User | AnonymousUser | None, reason: str) -> None:
    """Stamp the next save of ``instance`` with who made the change and why (its history row's user and reason)."""
    stamped = cast(_HistoryStamped, instance)
    stamped._history_user = actor if isinstance(actor, User) and actor.is_authenticated else None
    stamped._change_reason = reason


def change_reason(instance: Model) -> str:
    """The reason ``historise`` stamped on ``instance`` for its next save."""
    return cast(_HistoryStamped, instance)._change_reason


def _plain_json(value: Any) -> str:
    # orjson is several times faster; it refuses what it cannot represent exactly (integers beyond 64 bits,
    # non-string keys), which the standard encoder still writes.
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _converter(field: models.Field) -> Callable[[Any], Any] | None:
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        if encoder is None:
            return _plain_json

        def to_json(value: Any) -> Any:
            return json.dumps(value, cls=encoder)

        return to_json
    return None


def _columns_and_values(fields: Sequence[models.Field]) -> tuple[list[str], list[Callable[[Any], Any] | None]]:
    return [column_of(field) for field in fields], [_converter(field) for field in fields]


def _needs_pre_save(field: models.Field) -> bool:
    # Only date fields with auto_now(_add) compute their value when saved; the rest store the attribute.
    return getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)


def _row(obj: models.Model, fields: Sequence[models.Field], converters: Sequence, pre_save: Sequence[bool]) -> list:
    values = []
    for field, convert, compute in zip(fields, converters, pre_save, strict=True):
        value = field.pre_save(obj, True) if compute else getattr(obj, field.attname)
        values.append(convert(value) if convert is not None and value is not None else value)
    return values


def bulk_create_with_history_fast(
    objs: Sequence[ModelT],
    model: type[ModelT],
    *,
    default_user: User | None,
    default_change_reason: str,
    default_date: datetime,
) -> list[ModelT]:
    """Insert new objects and one "+" history row each; return them with their primary keys set."""
    objs = list(objs)
    if not objs:
        return objs
    if connection.vendor != "postgresql":
        return bulk_create_with_history(
            objs,
            model,
            batch_size=1000,
            default_user=default_user,
            default_change_reason=default_change_reason,
            default_date=default_date,
        )

    with transaction.atomic(savepoint=False):
        pk = model._meta.pk
        for obj, new_id in zip(objs, reserve_ids(model, len(objs)), strict=True):
            setattr(obj, pk.attname, new_id)
            obj._state.adding = False
        fields = [field for field in model._meta.concrete_fields if not field.generated]
        columns, converters = _columns_and_values(fields)
        pre_save = [_needs_pre_save(field) for field in fields]
        copy_rows(model._meta.db_table, columns, [_row(obj, fields, converters, pre_save) for obj in objs])

        historical = get_history_manager_for_model(model).model
        tracked = {field.attname for field in historical.tracked_fields}
        history_values = {
            "history_date": default_date,
            "history_change_reason": default_change_reason,
            "history_type": "+",
            "history_user_id": default_user.pk if default_user is not None else None,
        }
        history_fields = [field for field in historical._meta.concrete_fields if field.attname != "history_id"]
        unknown = [field.attname for field in history_fields if field.attname not in tracked | set(history_values)]
        if unknown:
            raise ValueError(f"Cannot fill history columns {unknown} of {historical.__name__}.")
        model_fields = {field.attname: field for field in fields}
        history_columns, _ = _columns_and_values(history_fields)
        history_converters = [
            _converter(model_fields[field.attname]) if field.attname in tracked else None for field in history_fields
        ]
        history_rows = []
        for obj in objs:
            row = []
            for field, convert in zip(history_fields, history_converters, strict=True):
                if field.attname in tracked:
                    value = getattr(obj, field.attname)
                    row.append(convert(value) if convert is not None and value is not None else value)
                else:
                    row.append(history_values[field.attname])
            history_rows.append(row)
        copy_rows(historical._meta.db_table, history_columns, history_rows)
    return objs


def history_insert_sql(model: type[Model], source: str, *, history_type: str, reason_param: str) -> str:
    """An INSERT of ``model``'s history rows from a CTE ``source`` returning its columns, as simple-history would.

    The statement takes ``%(now)s``, ``%(<reason_param>)s`` and ``%(reviewer)s`` (the acting user's id).
    """
    history = get_history_manager_for_model(model).model
    qn = connection.ops.quote_name
    tracked = [field.column for field in history._meta.concrete_fields if not field.name.startswith("history_")]
    extra = ["history_date", "history_change_reason", "history_type", "history_user_id"]
    return (
        f"INSERT INTO {qn(history._meta.db_table)} ({', '.join(qn(c) for c in tracked + extra)}) "
        f"SELECT {', '.join(qn(c) for c in tracked)}, %(now)s, %({reason_param})s, '{history_type}', %(reviewer)s "
        f"FROM {source}"
    )
