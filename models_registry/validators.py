"""Validation of a model's definition: labels, feature schema, sensitive attributes and metrics.

Used by the model fields (so the admin and ``full_clean`` apply them), by the API serializers (so a client gets
field errors) and by the services (the last guard before a write). JSON values are checked for what PostgreSQL's
jsonb refuses (NUL characters, lone surrogates, NaN and infinities, which ``json.loads("1e400")`` produces):
without this check such a value would fail at the database instead of being refused here with a reason.
"""

import math
from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from models_registry.choices import ModelTask

MAX_LABEL_LENGTH = 100
MAX_LABELS = 1000
MAX_SENSITIVE_ATTRIBUTES = 100


def json_value_problem(value: Any) -> str | None:
    """Why a JSON column of every database we support cannot store ``value``, or None if it can."""
    # Iterative walk: a value may nest deeper than Python's recursion limit.
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "Text may not contain NUL (\\u0000) characters."
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return "Text may not contain unpaired surrogate characters."
        elif isinstance(node, float) and not math.isfinite(node):
            return "Numbers must be finite (no NaN or infinity)."
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
    return None


def sensitive_name_key(name: str) -> str:
    """A name as compared with sensitive attributes: case, whitespace, underscores and hyphens do not count, so
    "Age band", "age_band" and "AGE-BAND" are one name."""
    return "".join(character for character in str(name).casefold() if not (character.isspace() or character in "_-"))


def sensitive_name_keys(names: Any) -> frozenset[str]:
    return frozenset(sensitive_name_key(name) for name in names or [])


def sensitive_paths(value: Any, keys: frozenset[str], prefix: str = "") -> list[str]:
    """Dotted paths of the entries of ``value`` (at any depth) whose names are sensitive attribute names."""
    found: list[str] = []
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            for name, child in node.items():
                child_path = f"{path}.{name}" if path else str(name)
                if sensitive_name_key(name) in keys:
                    found.append(child_path)
                else:
                    stack.append((child_path, child))
        elif isinstance(node, list):
            stack.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(node))
    return sorted(found)


def _schema_property_names(schema: Any) -> list[str]:
    names: list[str] = []
    for key, value in _walk_schema(schema):
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            names.extend(str(name) for name in value)
    return names


def _walk_schema(schema: Any):
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                yield key, value
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def validate_features_apart_from_sensitive(*, feature_schema: Any, sensitive_attributes: Any) -> None:
    """Refuse a feature schema naming a sensitive attribute (at any depth): it would show it to every reviewer."""
    keys = sensitive_name_keys(sensitive_attributes)
    clashes = sorted(
        {name for name in _schema_property_names(feature_schema or {}) if sensitive_name_key(name) in keys}
    )
    if clashes:
        raise ValidationError(
            {
                "feature_schema": f"Features may not be named like a sensitive attribute ({', '.join(clashes)}): "
                "sensitive attributes travel apart from the features, in 'attributes', and are never shown to "
                "reviewers."
            }
        )


def validate_json_value(value: Any) -> None:
    """Refuse what a JSON column cannot store on every database we support."""
    problem = json_value_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_json_value")


def _validate_unique_names(value: Any, *, what: str, max_items: int) -> None:
    if not isinstance(value, list):
        raise ValidationError(f"Give the {what} as a list of strings.", code="invalid")
    if len(value) > max_items:
        raise ValidationError(f"At most {max_items} {what} are allowed.", code="max_items")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValidationError(f"Every entry of the {what} must be a non-empty string.", code="invalid")
        if len(item) > MAX_LABEL_LENGTH:
            raise ValidationError(f"An entry of the {what} is longer than {MAX_LABEL_LENGTH} characters.")
        if item != item.strip():
            raise ValidationError(f"Entries of the {what} may not start or end with spaces: {item!r}.")
    duplicates = sorted({item for item in value if value.count(item) > 1})
    if duplicates:
        raise ValidationError(f"The {what} must be unique; repeated: {', '.join(duplicates)}.", code="unique")
    validate_json_value(value)


def validate_labels(value: Any) -> None:
    """A non-empty list of unique, non-blank strings."""
    _validate_unique_names(value, what="labels", max_items=MAX_LABELS)
    if not value:
        raise ValidationError("Give at least the labels the model can predict.", code="required")


def validate_sensitive_attributes(value: Any) -> None:
    """A list (possibly empty) of unique attribute names."""
    _validate_unique_names(value, what="sensitive attributes", max_items=MAX_SENSITIVE_ATTRIBUTES)


def validate_feature_schema(value: Any) -> None:
    """A JSON Schema (draft 2020-12) describing one prediction's input object."""
    if not isinstance(value, dict):
        raise ValidationError("The feature schema must be a JSON object (a JSON Schema).", code="invalid")
    validate_json_value(value)
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        location = "/".join(str(part) for part in exc.path) or "(root)"
        raise ValidationError(f"Not a valid JSON Schema at {location}: {exc.message}", code="invalid_schema") from exc
    except RecursionError as exc:
        raise ValidationError("The feature schema is nested too deeply.", code="invalid_schema") from exc
    declared_type = value.get("type")
    if declared_type is not None and declared_type != "object":
        raise ValidationError("A prediction's input is a JSON object: the schema's type must be 'object'.")


def validate_metrics(value: Any) -> None:
    """Evaluation metrics: a JSON object keyed by metric name."""
    if not isinstance(value, dict):
        raise ValidationError('Metrics must be a JSON object, e.g. {"accuracy": 0.91}.', code="invalid")
    validate_json_value(value)


def validate_label_set(*, task: str, labels: list[str], positive_label: str) -> None:
    """The labels fit the task, and the positive label is one of them; errors are keyed by field."""
    errors: dict[str, str] = {}
    if task == ModelTask.BINARY and len(labels) != 2:
        errors["labels"] = f"A binary classifier has exactly two labels, got {len(labels)}."
    elif task == ModelTask.MULTICLASS and len(labels) < 3:
        errors["labels"] = "A multiclass classifier has at least three labels; use 'binary' for two."
    if positive_label and positive_label not in labels:
        errors["positive_label"] = f"The positive label {positive_label!r} is not one of the labels."
    if errors:
        raise ValidationError(errors)
