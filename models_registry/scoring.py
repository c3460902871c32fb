"""Hosted scoring: the platform answers for items sent without a label, with the version's own model file.

A batch is scored with one vectorised ``predict_proba`` call per version; the model file is loaded with the
registry's trusted loader, which caches it per process by SHA-256.

Input columns, in this order of precedence:
1. An estimator fitted on a DataFrame knows its column names (``feature_names_in_``): it gets a DataFrame with
   exactly those columns.
2. Otherwise it gets a 2-D array whose columns follow ``"x-feature-order"`` of the model's feature schema
   (a list of property names in training order), if the schema has one;
3. else the schema's ``required`` list, when it names every property.
The order of the schema's ``properties`` object is not used: PostgreSQL's jsonb does not keep the key order
of an object, so it would silently feed a model its columns in another order. A model trained on an array
with several features and none of the declarations above is not scored; the error says what to declare.
A feature an item leaves out is passed as missing (NaN).

A model can answer an item with scores that are not probabilities (NaN from a missing value it cannot handle,
infinity, a number outside [0, 1]). Such an item is not refused, and is never decided automatically: its Score
has no confidence and says why in ``confidence_problem``, which the router quotes when it sends the case to
review. Its scores are stored as the model gave them, except NaN and infinity, which become null: a JSON column
cannot hold them.

A model file is checked against its model before it is used: at registration, ``model_file_mismatches`` refuses
what is already knowable (no probabilities, a feature count or names other than the columns above, classes that
are not the model's labels); before staging and production, ``model_file_check`` also scores a small sample of
inputs built from the feature schema and checks the answers are the model's labels and probabilities that sum
to 1. A DataFrame-trained file's names must be the schema's properties, in the declared order if the schema has
``"x-feature-order"`` (its ``required`` list is an order only for an array-trained file).
"""

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from jsonschema.exceptions import SchemaError

from models_registry.artifacts import ModelFileUnavailable, load_trusted_model
from models_registry.features import feature_sample, feature_validator
from models_registry.models import MLModel, ModelVersion
from reviews.routing import format_score

logger = logging.getLogger(__name__)


class ScoringError(Exception):
    """Hosted scoring is impossible for this batch; the message says why and what the caller can do."""


@dataclass(frozen=True, slots=True)
class Score:
    """The platform's answer for one item: its label, the label's probability as confidence, every label's score.

    When any of the item's scores is not a probability, ``confidence`` is None, ``confidence_problem`` says so in
    words ("the model's scores for this case are not probabilities between 0 and 1 (approve NaN, deny NaN)"),
    ``label`` is the label with the highest usable score (the model's first class when none is usable), and the
    non-finite ``scores`` are None.
    """

    label: str
    confidence: float | None
    scores: dict[str, float | None]
    confidence_problem: str = ""


FEATURE_ORDER_KEYWORD = "x-feature-order"
PROBABILITY_SUM_TOLERANCE = 1e-6


def feature_columns(model: MLModel) -> list[str] | None:
    """The column order of an array-trained model, from its feature schema; None when it does not say."""
    schema = model.feature_schema or {}
    properties = set(schema.get("properties", {}))
    declared = schema.get(FEATURE_ORDER_KEYWORD)
    if isinstance(declared, list) and declared and all(isinstance(name, str) for name in declared):
        return declared
    required = schema.get("required")
    if isinstance(required, list) and properties and set(required) == properties and len(required) == len(properties):
        return required
    if len(properties) == 1:
        return list(properties)
    return None


def design_matrix(estimator: Any, columns: list[str], features: Sequence[Mapping[str, Any]]) -> Any:
    """The matrix an estimator takes for these feature dicts: a DataFrame in its fitted column order when it knows
    its feature names, else an array in the schema's column order. Scoring and retraining build it alike."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return pd.DataFrame({name: [row.get(name) for row in features] for name in names}, columns=list(names))
    rows = [[row.get(column) for column in columns] for row in features]
    try:
        # The common case: numeric features, None becoming NaN.
        return np.array(rows, dtype=float)
    except (TypeError, ValueError):
        return np.array(rows, dtype=object)


def _listed(names: Sequence[str]) -> str:
    return ", ".join(str(name) for name in names)


def _feature_name_mismatch(model: MLModel, names: list[str]) -> str | None:
    schema = model.feature_schema or {}
    columns = feature_columns(model)
    # A DataFrame-trained file gets its columns by name, so only an order the schema declares can contradict it.
    declared_order = columns if columns is not None and columns == schema.get(FEATURE_ORDER_KEYWORD) else None
    ordered = declared_order is not None
    expected = declared_order if declared_order is not None else [str(name) for name in schema.get("properties", {})]
    if names == expected or (not ordered and set(names) == set(expected)):
        return None
    if len(names) != len(expected):
        listed = f": {_listed(expected)}" if expected else ""
        return f"the file expects {len(names)} features ({_listed(names)}), the schema has {len(expected)}{listed}"
    if set(names) == set(expected):
        return (
            f"the file was trained on the features in the order {_listed(names)}; the schema declares the order "
            f"{_listed(expected)}"
        )
    return f"the file was trained on the features {_listed(names)}; the schema has {_listed(expected)}"


def model_file_mismatches(*, model: MLModel, estimator: Any) -> list[str]:
    """What makes ``estimator`` unusable for ``model`` without scoring anything, each in words; empty when nothing.

    Checked: it gives probabilities; its feature count and names (``n_features_in_``, ``feature_names_in_``) match
    the columns the feature schema gives it (see the module docstring); its classes are among the model's labels.
    """
    problems = []
    if not callable(getattr(estimator, "predict_proba", None)):
        problems.append("the file gives no probabilities (its estimator has no predict_proba)")
    columns = feature_columns(model)
    names = getattr(estimator, "feature_names_in_", None)
    expected = getattr(estimator, "n_features_in_", None)
    if names is not None:
        problem = _feature_name_mismatch(model, [str(name) for name in names])
        if problem:
            problems.append(problem)
    elif columns is None:
        problems.append(
            f"the file was trained on {expected if expected is not None else 'several'} features without column "
            f'names, and the schema does not say their order: add "{FEATURE_ORDER_KEYWORD}": [the feature names in '
            "training order] to the schema, or train on a DataFrame"
        )
    elif expected is not None and expected != len(columns):
        problems.append(f"the file expects {expected} features, the schema has {len(columns)}: {_listed(columns)}")
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        problems.append("the file does not say which labels it predicts (its estimator has no classes_)")
    else:
        unknown = sorted({str(label) for label in classes} - set(model.labels))
        if unknown:
            problems.append(
                f"the file predicts labels that are not the model's labels: {_listed(unknown)} "
                f"(labels: {_listed(model.labels)})"
            )
    return problems


@dataclass(frozen=True)
class ModelFileCheck:
    """What scoring a version's model file on inputs built from its model's feature schema found.

    ``problems`` says in words what failed (empty when the file scores its schema); ``sample`` holds the inputs
    it was scored on.
    """

    problems: list[str]
    sample: list[dict[str, Any]]


def _sample_accepted(model: MLModel, sample: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    validator = feature_validator(model_id=model.pk, schema=model.feature_schema)
    accepted, refusals = [], []
    for row in sample:
        problems = [f"{path or 'features'}: {message}" for path, message in validator.problems(row)]
        if problems:
            refusals.extend(problems)
        else:
            accepted.append(row)
    return accepted, refusals


def _probability_problems(probabilities: np.ndarray, classes: list[str]) -> list[str]:
    problems = []

    def first_row(bad: np.ndarray) -> str:
        row = int(np.flatnonzero(bad)[0])
        given = ", ".join(
            f"{label} {format_score(value)}" for label, value in zip(classes, probabilities[row].tolist(), strict=True)
        )
        return f"sample input {row + 1}: {given}"

    finite = np.isfinite(probabilities)
    if not finite.all():
        problems.append(f"the file's probabilities are not all finite ({first_row(~finite.all(axis=1))})")
    with np.errstate(invalid="ignore"):
        outside = finite & ((probabilities < 0.0) | (probabilities > 1.0))
    if outside.any():
        problems.append(f"the file's probabilities are not all within [0, 1] ({first_row(outside.any(axis=1))})")
    totals = probabilities.sum(axis=1)
    unbalanced = finite.all(axis=1) & (np.abs(totals - 1.0) > PROBABILITY_SUM_TOLERANCE)
    if unbalanced.any():
        row = int(np.flatnonzero(unbalanced)[0])
        problems.append(f"the file's probabilities for sample input {row + 1} sum to {totals[row]:.10g}, not 1")
    return problems


def model_file_check(*, model: MLModel, version: ModelVersion) -> ModelFileCheck:
    """Load the version's file as scoring does and score inputs built from the model's feature schema.

    It passes when the file loads with the trusted types, fits the schema (``model_file_mismatches``), accepts a
    small deterministic sample of inputs the schema allows (``feature_sample``), and answers every one with labels
    among the model's labels and probabilities that are finite, within [0, 1] and sum to 1.
    """
    try:
        estimator = load_trusted_model(version)
    except ModelFileUnavailable as exc:
        return ModelFileCheck(problems=[str(exc)], sample=[])
    mismatches = model_file_mismatches(model=model, estimator=estimator)
    if mismatches:
        return ModelFileCheck(problems=mismatches, sample=[])
    try:
        sample, refusals = _sample_accepted(model, feature_sample(model.feature_schema))
    except SchemaError as exc:
        return ModelFileCheck(problems=[f"the feature schema is not valid JSON Schema: {exc.message}"], sample=[])
    if not sample:
        reason = f": {'; '.join(sorted(set(refusals)))}" if refusals else ""
        return ModelFileCheck(
            problems=[
                "no sample input could be built that the feature schema accepts"
                f'{reason} (give each such feature "examples" in the schema)'
            ],
            sample=[],
        )
    matrix = design_matrix(estimator, feature_columns(model) or [], sample)
    try:
        probabilities = np.asarray(estimator.predict_proba(matrix), dtype=float)
        predicted = [str(label) for label in estimator.predict(matrix)]
    except Exception as exc:
        # Whatever the estimator says about the sample (a category it never saw, a missing value) is the reason.
        return ModelFileCheck(problems=[f"scoring the sample inputs failed: {exc}"], sample=sample)
    classes = [str(label) for label in estimator.classes_]
    if probabilities.shape != (len(sample), len(classes)):
        return ModelFileCheck(
            problems=[
                f"the file answered {len(sample)} sample inputs over {len(classes)} labels with probabilities "
                f"shaped {probabilities.shape}"
            ],
            sample=sample,
        )
    problems = []
    unknown = sorted(set(predicted) - set(model.labels))
    if unknown:
        problems.append(
            f"the file answered the sample inputs with labels that are not the model's labels: {_listed(unknown)} "
            f"(labels: {_listed(model.labels)})"
        )
    problems.extend(_probability_problems(probabilities, classes))
    return ModelFileCheck(problems=problems, sample=sample)


def score_batch(*, model: MLModel, version: ModelVersion, features: Sequence[Mapping[str, Any]]) -> list[Score]:
    """Label, confidence (the top probability) and per-label scores for each item, in order; see ``Score`` for
    an item whose scores are not probabilities."""
    if not version.artifact:
        raise ScoringError(
            f"Version {version.number} of {model.name} has no model file, so the platform cannot score it: "
            "send label and confidence with each prediction, or use a version with a model file."
        )
    try:
        estimator = load_trusted_model(version)
    except ModelFileUnavailable as exc:
        # The registry checked the file at upload; failing now (file altered or gone) is an operations problem,
        # reported to the caller with the registry's reason rather than as a server error.
        logger.error("hosted scoring unavailable: %s", exc)
        raise ScoringError(str(exc)) from exc
    if not hasattr(estimator, "predict_proba"):
        raise ScoringError(f"The model of version {version.number} of {model.name} gives no probabilities.")

    columns = feature_columns(model)
    if getattr(estimator, "feature_names_in_", None) is None:
        if columns is None:
            raise ScoringError(
                f"The model file of version {version.number} of {model.name} was trained without column names, "
                f'and the feature schema does not say the column order: add "{FEATURE_ORDER_KEYWORD}": '
                "[the feature names in training order] to the schema, or train on a DataFrame."
            )
        expected = getattr(estimator, "n_features_in_", len(columns))
        if expected != len(columns):
            raise ScoringError(
                f"Version {version.number} of {model.name} expects {expected} features; the feature schema "
                f"orders {len(columns)}."
            )
    matrix = design_matrix(estimator, columns or [], features)
    try:
        probabilities = np.asarray(estimator.predict_proba(matrix), dtype=float)
    except Exception as exc:
        # The estimator's own complaint (a missing value, a category it never saw) is the useful message.
        raise ScoringError(f"Hosted scoring with version {version.number} of {model.name} failed: {exc}") from exc

    classes = [str(label) for label in estimator.classes_]
    unknown = sorted(set(classes) - set(model.labels))
    if unknown:
        raise ScoringError(
            f"Version {version.number} of {model.name} predicts labels that are not the model's labels: "
            f"{', '.join(unknown)}."
        )
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(probabilities) & (probabilities >= 0.0) & (probabilities <= 1.0)
    # Unusable scores never win: argmax would pick a NaN, or a score of 7 over every probability.
    best = np.where(usable, probabilities, -np.inf).argmax(axis=1)
    return [
        _score(classes, row, index, usable=row_usable)
        for row, index, row_usable in zip(probabilities.tolist(), best.tolist(), usable.all(axis=1), strict=True)
    ]


def _score(classes: list[str], row: list[float], best: int, *, usable: bool) -> Score:
    if usable:
        return Score(label=classes[best], confidence=row[best], scores=dict(zip(classes, row, strict=True)))
    given = ", ".join(f"{label} {format_score(value)}" for label, value in zip(classes, row, strict=True))
    return Score(
        label=classes[best],
        confidence=None,
        scores={label: value if math.isfinite(value) else None for label, value in zip(classes, row, strict=True)},
        confidence_problem=f"the model's scores for this case are not probabilities between 0 and 1 ({given})",
    )
