"""A small typed client of the hitl_platform REST API (``/api/v1/``), for ML engineers' scripts and notebooks.

It needs only the standard library (``urllib.request``) and, to register a fitted scikit-learn pipeline, skops.
This module imports nothing of Django and reads no project settings: it talks to a running server over HTTP.

Responses are returned as the API sends them, typed with ``TypedDict`` (plain dicts at run time). Errors are
raised as ``HitlApiError`` (the server answered with an error: its status, detail and field errors),
``HitlConnectionError`` (no answer, after the retries allowed) or ``HitlWaitTimeout`` (a wait ran out).

Retries: only requests that can be sent twice without effect are retried, that is reads (GET), prediction batches
(the server stores each external_id once and answers a resent item as a replay) and outcome reports (the same
label again changes nothing). They are retried on network errors, timeouts and 502/503/504, with exponential
backoff, or after the server's ``Retry-After`` when it sends one no longer than ``max_retry_after``. Nothing is
retried on a 4xx answer, and registrations, audits and retraining jobs are never sent twice.
"""

import csv
import email.utils
import http.client
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from os import PathLike
from pathlib import Path
from typing import Any, Literal, NotRequired, Required, TypedDict, TypeVar
from urllib.error import HTTPError, URLError
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from urllib.request import OpenerDirector, Request, build_opener

__all__ = [
    "BiasAudit",
    "Decision",
    "HitlApiError",
    "HitlClient",
    "HitlConnectionError",
    "HitlError",
    "HitlWaitTimeout",
    "Model",
    "ModelVersion",
    "Outcome",
    "Prediction",
    "PredictionInput",
    "PredictionResult",
    "PromotionRequest",
    "RetrainingJob",
]

API_PREFIX = "/api/v1"
USER_AGENT = "hitl-platform-client/0.1 (python-urllib)"
# The intake endpoint takes at most this many predictions per request.
MAX_BATCH_SIZE = 5000
# Answers that say "try again": a proxy or the server itself is briefly unable to answer.
RETRY_STATUSES = frozenset({502, 503, 504})
# Failures where the request may or may not have reached the server: safe to resend only when idempotent.
NETWORK_ERRORS = (URLError, ConnectionError, TimeoutError, http.client.HTTPException)
FINISHED_JOB_STATUSES = frozenset({"succeeded", "failed"})
STREAM_CHUNK_BYTES = 64 * 1024

T = TypeVar("T")
TrainingDataFormat = Literal["csv", "jsonl"]
Moment = datetime | date | str


# --- what the API sends and takes ---


class Model(TypedDict):
    name: str
    description: str
    task: str
    labels: list[str]
    positive_label: str
    feature_schema: dict[str, Any]
    sensitive_attributes: list[str]
    risk_tier: str
    owner: str
    team: str | None
    intended_use: str
    out_of_scope_use: str
    limitations: str
    ethical_considerations: str
    review_guidelines: str
    latest_version: int | None
    production_version: int | None
    created_at: str
    updated_at: str


class ModelVersion(TypedDict):
    model: str
    number: int
    stage: str
    artifact_sha256: str
    artifact_size: int | None
    library_versions: dict[str, str]
    metrics: dict[str, Any]
    description: str
    parent_version: int | None
    created_by: str
    created_at: str


class GateResult(TypedDict):
    name: str
    passed: bool
    reason: str
    evidence: Any


class PromotionRequest(TypedDict):
    id: int
    model: str
    version: int
    target_stage: str
    status: str
    requester: str
    rationale: str
    decided_by: str | None
    decision_reason: str
    decided_at: str | None
    gate_results: list[GateResult]
    created_at: str


class PredictionInput(TypedDict, total=False):
    """One prediction to submit. ``external_id`` is your case id and the idempotency key: unique per model."""

    external_id: Required[str]
    features: Required[dict[str, Any]]
    attributes: dict[str, Any]
    label: str
    confidence: float
    scores: dict[str, float]
    explanation: Any
    version: int


class DecisionBrief(TypedDict):
    label: str
    source: str


class PredictionResult(TypedDict):
    external_id: str
    id: int
    route: str
    reasons: list[str]
    decision: DecisionBrief | None
    review_task: int | None
    replayed: bool


class DecisionDetail(TypedDict):
    id: int
    label: str
    source: str
    agreement: float | None
    decided_at: str


class ReviewStatus(TypedDict):
    id: int
    status: str
    reviews_required: int
    needs_adjudication: bool
    priority: int
    due_at: str
    sla_breached: bool


class Prediction(TypedDict):
    id: int
    external_id: str
    model: str
    version: int
    features: dict[str, Any]
    label: str
    confidence: float | None
    scores: dict[str, float]
    explanation: Any
    scored_by_platform: bool
    route: str
    reasons: list[str]
    priority: int
    is_qa_sample: bool
    created_at: str
    outcome_label: str
    outcome_reported_at: str | None
    decision: DecisionDetail | None
    review_task: ReviewStatus | None


class Outcome(TypedDict):
    prediction: int
    external_id: str
    outcome_label: str
    outcome_reported_at: str | None
    outcome_reported_by: str | None


class Decision(TypedDict):
    id: int
    prediction: int
    external_id: str
    model: str
    version: int
    label: str
    source: str
    agreement: float | None
    reviewers: list[str]
    decided_by: str | None
    reason: str
    policy_history_id: int | None
    policy_sha256: str
    decided_at: str


class BiasAudit(TypedDict):
    id: int
    model: str
    version: int | None
    population: str
    sensitive_attributes: list[str]
    since: str | None
    until: str | None
    trigger: str
    status: str
    progress: int
    attempts: int
    passed: bool | None
    verdict: str
    summary: list[str]
    case_count: int | None
    key_ratio: float | None
    # Only in a single audit (``get_audit``, ``wait_for_audit``), not in lists.
    result: NotRequired[dict[str, Any] | None]
    inputs_sha256: str
    error: str
    requested_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    report_url: str


class RetrainingJob(TypedDict):
    id: int
    model: str
    base_version: int
    candidate_version: int | None
    trigger: str
    mitigation: str
    mitigation_attribute: str
    holdout_share: float
    seed: int
    status: str
    progress: int
    attempts: int
    error: str
    snapshot: dict[str, Any] | None
    comparison: dict[str, Any] | None
    timings: dict[str, Any] | None
    audit: int | None
    promotion_request: int | None
    requested_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    page_url: str


# --- errors ---


class HitlError(Exception):
    """Anything this client raises about the API."""


class HitlApiError(HitlError):
    """The server answered with an error status.

    ``detail`` is what is wrong, in words. ``field_errors`` maps each refused field to its messages, as the API's
    400 answers name them (``{"labels": ["This list may not be empty."]}``; an item of a prediction batch as
    ``predictions[3].features.age``, counted over everything given to ``submit_predictions``). ``body`` is the
    decoded answer as sent (a dict, a list, or the text of a non-JSON answer); ``retry_after`` the seconds the
    server asked to wait, if it did.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        field_errors: Mapping[str, Sequence[str]] | None = None,
        *,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.field_errors = {name: list(messages) for name, messages in (field_errors or {}).items()}
        self.body = body
        self.retry_after = retry_after
        super().__init__(status, detail, self.field_errors)

    def __str__(self) -> str:
        fields = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in self.field_errors.items())
        return f"HTTP {self.status}: {self.detail}" + (f" ({fields})" if fields else "")

    @classmethod
    def from_body(
        cls,
        status: int,
        body: Any,
        *,
        reason: str = "",
        retry_after: float | None = None,
        item_offset: int = 0,
        detail_prefix: str = "",
    ) -> "HitlApiError":
        """The error of an answer's decoded body; ``item_offset`` counts a batch's items from there."""
        field_errors = _field_errors(status, body, item_offset=item_offset)
        detail = _detail(body, field_errors) or reason or f"HTTP {status}"
        return cls(status, detail_prefix + detail, field_errors, body=body, retry_after=retry_after)


class HitlConnectionError(HitlError):
    """No answer from the server (refused, reset, timed out), after every retry the request was allowed."""


class HitlWaitTimeout(HitlError, TimeoutError):
    """A wait ran out before its job finished or its decisions arrived; ``last`` is what was seen last."""

    def __init__(self, message: str, *, last: Any) -> None:
        super().__init__(message)
        self.last = last


def _detail(body: Any, field_errors: Mapping[str, Sequence[str]]) -> str:
    if isinstance(body, dict):
        for key in ("detail", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return body[key]
    if field_errors:
        return "The request is invalid."
    if isinstance(body, str):
        return body.strip()[:500]
    return ""


def _field_errors(status: int, body: Any, *, item_offset: int) -> dict[str, list[str]]:
    """Field errors of a refused request: DRF's ``{"field": [...]}`` answers (400) and the prediction intake's
    ``errors`` / ``conflicts`` lists of (index, field, message), indexed from ``item_offset``."""
    errors: dict[str, list[str]] = {}
    if isinstance(body, dict):
        for item in [*(body.get("errors") or []), *(body.get("conflicts") or [])]:
            if isinstance(item, dict) and "message" in item:
                errors.setdefault(_intake_path(item, item_offset), []).append(str(item["message"]))
    if status != 400 or errors:
        return errors
    if isinstance(body, list):
        _collect_messages("non_field_errors", body, errors)
    elif isinstance(body, dict):
        for name, value in body.items():
            if name != "detail":
                _collect_messages(str(name), value, errors)
    return errors


def _intake_path(item: Mapping[str, Any], item_offset: int) -> str:
    field = str(item.get("field") or "")
    index = item.get("index")
    if not isinstance(index, int):
        return field or "predictions"
    return f"predictions[{index + item_offset}]" + (f".{field}" if field else "")


def _collect_messages(path: str, value: Any, errors: dict[str, list[str]]) -> None:
    """DRF nests errors as the input was nested: a list item or an object's field gets its own path."""
    if isinstance(value, dict):
        for name, inner in value.items():
            _collect_messages(f"{path}.{name}", inner, errors)
    elif isinstance(value, list):
        for position, inner in enumerate(value):
            if isinstance(inner, dict | list):
                _collect_messages(f"{path}[{position}]", inner, errors)
            else:
                errors.setdefault(path, []).append(str(inner))
    elif value is not None:
        errors.setdefault(path, []).append(str(value))


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds: given as seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def _iso(moment: Moment | None) -> str | None:
    return moment.isoformat() if isinstance(moment, datetime | date) else moment


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_query_value(item) for item in value]
    return value


def _multipart(fields: Mapping[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with text fields and one file, and its Content-Type."""
    boundary = uuid.uuid4().hex
    while boundary.encode() in content:
        boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _given(**values: Any) -> dict[str, Any]:
    """The arguments the caller gave (not None): the server's defaults stay the server's."""
    return {name: value for name, value in values.items() if value is not None}


def _path_part(value: str | int) -> str:
    return quote(str(value), safe="")


class HitlClient:
    """A session with one hitl_platform server, authenticated by an API token.

    ``base_url`` is the server's address (``https://hitl.example.org``); ``token`` an API token (or use
    ``HitlClient.login``). ``timeout`` is per request, in seconds; ``retries`` how many times an idempotent request
    is sent again, waiting ``backoff * 2**n`` seconds before the n-th (from 0) or the server's ``Retry-After`` when
    it is at most ``max_retry_after`` seconds (a longer one is raised at once: the server is not coming back soon).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 60,
    ) -> None:
        if retries < 0 or backoff < 0 or timeout <= 0:
            raise ValueError("retries and backoff must be 0 or more, and timeout more than 0.")
        self.base_url = base_url.rstrip("/").removesuffix(API_PREFIX)
        self.token = token
        self.token_expiry: str | None = None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self._opener: OpenerDirector = build_opener()

    def __repr__(self) -> str:
        return f"HitlClient({self.base_url!r})"

    # --- authentication ---

    @classmethod
    def login(
        cls,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 30,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 60,
    ) -> "HitlClient":
        """A client holding a new API token for ``username`` (``POST /api/v1/auth/token/``).

        The token is in ``client.token`` (shown once by the server: keep it if you want to reuse it) and its expiry
        in ``client.token_expiry``. A wrong password is a ``HitlApiError`` (400) under ``non_field_errors``.
        """
        client = cls(base_url, timeout=timeout, retries=retries, backoff=backoff, max_retry_after=max_retry_after)
        answer = client._json("POST", "auth/token/", body={"username": username, "password": password})
        client.token = answer["token"]
        client.token_expiry = answer["expiry"]
        return client

    def revoke_token(self) -> None:
        """Revoke this client's token (``POST /api/v1/auth/token/revoke/``); the client cannot be used after."""
        self._json("POST", "auth/token/revoke/")
        self.token = None
        self.token_expiry = None

    # --- models, versions, promotions ---

    def register_model(
        self,
        name: str,
        *,
        labels: Sequence[str],
        feature_schema: Mapping[str, Any] | None = None,
        task: str | None = None,
        positive_label: str | None = None,
        sensitive_attributes: Sequence[str] | None = None,
        risk_tier: str | None = None,
        team: str | None = None,
        description: str | None = None,
        intended_use: str | None = None,
        out_of_scope_use: str | None = None,
        limitations: str | None = None,
        ethical_considerations: str | None = None,
        review_guidelines: str | None = None,
    ) -> Model:
        """Register a model, of which you become the owner (``POST /api/v1/models/``).

        Arguments left out take the server's defaults (task ``binary``, risk tier ``medium``, no team).
        """
        body = _given(
            name=name,
            labels=list(labels),
            feature_schema=dict(feature_schema) if feature_schema is not None else None,
            task=task,
            positive_label=positive_label,
            sensitive_attributes=list(sensitive_attributes) if sensitive_attributes is not None else None,
            risk_tier=risk_tier,
            team=team,
            description=description,
            intended_use=intended_use,
            out_of_scope_use=out_of_scope_use,
            limitations=limitations,
            ethical_considerations=ethical_considerations,
            review_guidelines=review_guidelines,
        )
        return self._json("POST", "models/", body=body)

    def get_model(self, name: str) -> Model:
        """A model and its model card (``GET /api/v1/models/{name}/``)."""
        return self._json("GET", f"models/{_path_part(name)}/")

    def iter_models(self, *, task: str | None = None, risk_tier: str | None = None) -> Iterator[Model]:
        """The models you may read, page after page (``GET /api/v1/models/``)."""
        return self._pages("models/", _given(task=task, risk_tier=risk_tier))

    def register_version(
        self,
        model: str,
        pipeline: Any = None,
        *,
        model_file: bytes | None = None,
        metrics: Mapping[str, Any] | None = None,
        description: str | None = None,
        parent_version: int | None = None,
    ) -> ModelVersion:
        """Register the model's next version (``POST /api/v1/models/{name}/versions/``).

        ``pipeline`` is a fitted scikit-learn estimator, saved with ``skops.io.dumps`` and uploaded; or give the
        saved skops file's bytes as ``model_file``; or neither, with ``metrics``, for a version you score yourself.
        The server checks the file against its allowlist and the model's labels and features; the answer's
        ``artifact_sha256`` is the SHA-256 of the bytes it stored.
        """
        if pipeline is not None and model_file is not None:
            raise ValueError("Give the pipeline or its saved model_file, not both.")
        if pipeline is not None:
            from skops import io as skops_io

            model_file = skops_io.dumps(pipeline)
        path = f"models/{_path_part(model)}/versions/"
        fields = _given(
            metrics=dict(metrics) if metrics is not None else None,
            description=description,
            parent_version=parent_version,
        )
        if model_file is None:
            return self._json("POST", path, body=fields)
        form = {name: json.dumps(value) if name == "metrics" else str(value) for name, value in fields.items()}
        data, content_type = _multipart(form, "artifact", "model.skops", model_file)
        return self._json("POST", path, data=data, content_type=content_type)

    def get_version(self, model: str, number: int) -> ModelVersion:
        """A version: stage, file hash, library versions, metrics, lineage."""
        return self._json("GET", f"models/{_path_part(model)}/versions/{_path_part(number)}/")

    def iter_versions(self, model: str, *, stage: str | None = None) -> Iterator[ModelVersion]:
        """The model's versions, newest first."""
        return self._pages(f"models/{_path_part(model)}/versions/", _given(stage=stage))

    def request_promotion(self, model: str, version: int, *, target_stage: str, rationale: str) -> PromotionRequest:
        """Ask for a version to move to ``staging``, ``production`` or ``archived``; someone else decides."""
        path = f"models/{_path_part(model)}/versions/{_path_part(version)}/promotion-requests/"
        return self._json("POST", path, body={"target_stage": target_stage, "rationale": rationale})

    def get_promotion_request(self, request_id: int) -> PromotionRequest:
        """A promotion request, its decision and the gate results it was decided on."""
        return self._json("GET", f"promotion-requests/{_path_part(request_id)}/")

    # --- predictions and outcomes ---

    def submit_predictions(
        self, model: str, predictions: Iterable[PredictionInput], *, batch_size: int = 1000
    ) -> list[PredictionResult]:
        """Submit predictions to be routed, in batches of ``batch_size`` (``POST /api/v1/models/{name}/predictions/``).

        One result per prediction, in the order given. Each needs an ``external_id``, unique per model: the server
        stores an external_id once, so a batch resent after a lost answer creates nothing twice (its items come
        back with ``replayed: True``), and a batch is resent on network errors and 502/503/504.

        Each batch is stored whole or not at all. A refused batch raises ``HitlApiError`` (400: invalid items;
        409: an external_id stored before with another payload) naming the items by their position in
        ``predictions``; the batches before it are stored, and sending everything again stores only the rest.
        A prediction without an external_id, or repeating one, is a ``ValueError`` before anything is sent.
        """
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}.")
        seen: set[str] = set()
        items = [_checked_prediction(item, position, seen) for position, item in enumerate(predictions)]
        path = f"models/{_path_part(model)}/predictions/"
        results: list[PredictionResult] = []
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            try:
                answer = self._json("POST", path, body={"predictions": batch}, idempotent=True)
            except HitlApiError as error:
                if not results:
                    raise
                stored = len(results)
                raise HitlApiError.from_body(
                    error.status,
                    error.body,
                    retry_after=error.retry_after,
                    item_offset=stored,
                    detail_prefix=f"Predictions {stored} onwards were not stored (the {stored} before them were): ",
                ) from None
            results.extend(answer["results"])
        return results

    def get_prediction(self, prediction_id: int) -> Prediction:
        """One case: its route and reasons, its decision and its review status (never its sensitive attributes)."""
        return self._json("GET", f"predictions/{_path_part(prediction_id)}/")

    def iter_predictions(
        self,
        *,
        model: str | None = None,
        external_id: str | None = None,
        label: str | None = None,
        route: str | None = None,
        source: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        page_size: int | None = None,
    ) -> Iterator[Prediction]:
        """Cases of the models you may read, newest first (``GET /api/v1/predictions/``); ``since`` and ``until``
        bound the time they were decided."""
        query = _given(
            model=model,
            external_id=external_id,
            label=label,
            route=route,
            source=source,
            since=since,
            until=until,
            page_size=page_size,
        )
        return self._pages("predictions/", query)

    def report_outcome(
        self, prediction_id: int, label: str, *, correction: bool = False, reason: str | None = None
    ) -> Outcome:
        """Report what really happened (``POST /api/v1/predictions/{id}/outcome/``).

        The same label again changes nothing (so it is retried like a read); another label once one is recorded
        needs ``correction=True`` and a ``reason``, else ``HitlApiError`` 409.
        """
        body = _given(label=label, correction=correction or None, reason=reason)
        return self._json("POST", f"predictions/{_path_part(prediction_id)}/outcome/", body=body, idempotent=True)

    # --- decisions ---

    def iter_decisions(
        self,
        *,
        model: str | None = None,
        external_id: str | None = None,
        label: str | None = None,
        source: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        after: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[Decision]:
        """Final decisions, oldest first by id, page after page (``GET /api/v1/decisions/``).

        New decisions only join the end of the feed: keep the last ``id`` you read and pass it as ``after`` to
        read only what came since.
        """
        query = _given(
            model=model,
            external_id=external_id,
            label=label,
            source=source,
            since=since,
            until=until,
            after=after,
            page_size=page_size,
        )
        return self._pages("decisions/", query)

    def wait_for_decisions(
        self,
        model: str,
        external_ids: Iterable[str],
        *,
        since: Moment | None = None,
        timeout: float = 600,
        poll_interval: float = 5,
    ) -> dict[str, Decision]:
        """Wait until every case named has its final decision; they are returned by external_id, in that order.

        Reads the model's decisions feed once, then only what joined it since; ``since`` (a decision time) skips
        the older part of the feed. Raises ``HitlWaitTimeout`` after ``timeout`` seconds, its ``last`` holding the
        decisions found so far.
        """
        wanted = list(dict.fromkeys(external_ids))
        missing = set(wanted)
        found: dict[str, Decision] = {}
        after: int | None = None
        deadline = time.monotonic() + timeout
        while True:
            for decision in self.iter_decisions(model=model, since=since, after=after, page_size=1000):
                after = decision["id"]
                if decision["external_id"] in missing:
                    found[decision["external_id"]] = decision
                    missing.discard(decision["external_id"])
            if not missing:
                return {external_id: found[external_id] for external_id in wanted}
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HitlWaitTimeout(
                    f"{len(missing)} of {len(wanted)} cases of {model} have no final decision after {timeout:g} s.",
                    last=found,
                )
            time.sleep(min(poll_interval, remaining))

    # --- bias audits ---

    def start_audit(
        self,
        model: str,
        *,
        population: str,
        sensitive_attributes: Sequence[str],
        version: int | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
    ) -> BiasAudit:
        """Queue a bias audit of the model (``POST /api/v1/models/{name}/audits/``); wait for it with
        ``wait_for_audit(audit["id"])``.

        ``population``: ``model`` (its labels), ``decisions`` (the final decisions), ``reviewers`` or
        ``amplification`` (what human review changed). ``since`` / ``until`` bound the cases' reception. When the
        server's task queue is down it answers 503: the ``HitlApiError``'s ``body`` is the audit, failed, to be
        asked for again later.
        """
        body = _given(
            population=population,
            sensitive_attributes=list(sensitive_attributes),
            version=version,
            since=_iso(since),
            until=_iso(until),
        )
        return self._json("POST", f"models/{_path_part(model)}/audits/", body=body)

    def get_audit(self, audit_id: int) -> BiasAudit:
        """One audit: status and progress, and once it succeeded its verdict, summary and figures (``result``)."""
        return self._json("GET", f"audits/{_path_part(audit_id)}/")

    def iter_audits(self, model: str) -> Iterator[BiasAudit]:
        """The model's audits, newest first, without their figures."""
        return self._pages(f"models/{_path_part(model)}/audits/", {})

    def wait_for_audit(self, audit_id: int, *, timeout: float = 600, poll_interval: float = 2) -> BiasAudit:
        """Poll an audit until it has ``succeeded`` or ``failed`` (see its ``error``) and return it.

        Raises ``HitlWaitTimeout`` after ``timeout`` seconds, its ``last`` holding the audit as last read.
        """
        return self._wait_for_job(f"audits/{_path_part(audit_id)}/", timeout, poll_interval, f"Audit {audit_id}")

    # --- retraining ---

    def start_retraining(
        self,
        model: str,
        *,
        mitigation: str | None = None,
        mitigation_attribute: str | None = None,
        holdout_share: float | None = None,
        seed: int | None = None,
    ) -> RetrainingJob:
        """Queue a retraining job (``POST /api/v1/models/{name}/retraining-jobs/``) on the cases humans decided.

        ``mitigation``: ``none`` (the default), ``demographic_parity`` or ``equalized_odds``, constraining
        ``mitigation_attribute``; ``holdout_share`` from 0.05 to 0.5 (default 0.2); ``seed`` for the split. A job
        already queued or running for the model is a ``HitlApiError`` 409 whose ``body["job"]`` is its id; a
        task queue that is down, a 503 as for ``start_audit``.
        """
        body = _given(
            mitigation=mitigation, mitigation_attribute=mitigation_attribute, holdout_share=holdout_share, seed=seed
        )
        return self._json("POST", f"models/{_path_part(model)}/retraining-jobs/", body=body)

    def get_retraining_job(self, job_id: int) -> RetrainingJob:
        """One job: status and progress, then its snapshot, comparison, candidate version and promotion request."""
        return self._json("GET", f"retraining-jobs/{_path_part(job_id)}/")

    def iter_retraining_jobs(self, model: str) -> Iterator[RetrainingJob]:
        """The model's retraining jobs, newest first."""
        return self._pages(f"models/{_path_part(model)}/retraining-jobs/", {})

    def wait_for_retraining_job(self, job_id: int, *, timeout: float = 1800, poll_interval: float = 5) -> RetrainingJob:
        """Poll a job until it has ``succeeded`` or ``failed`` (see its ``error``) and return it; raises
        ``HitlWaitTimeout`` after ``timeout`` seconds."""
        return self._wait_for_job(
            f"retraining-jobs/{_path_part(job_id)}/", timeout, poll_interval, f"Retraining job {job_id}"
        )

    # --- training data ---

    def download_training_data(
        self,
        model: str,
        destination: str | PathLike[str],
        *,
        format: TrainingDataFormat = "csv",
        since: Moment | None = None,
        until: Moment | None = None,
        sources: Sequence[str] | None = None,
        include_sensitive: bool = False,
    ) -> Path:
        """Stream the model's human-decided cases to a file (``GET /api/v1/models/{name}/training-data/``).

        ``format`` ``csv`` or ``jsonl``; ``since`` / ``until`` bound the cases' reception (a date is midnight
        UTC); ``sources`` keeps only ``consensus`` and/or ``adjudication`` decisions; ``include_sensitive`` adds
        the sensitive attributes (for users allowed to see them; recorded in the ledger). The file is written
        under a ``.part`` name and renamed once complete; an interrupted download starts again, within the retries.
        """
        target = Path(destination)
        partial = target.with_name(target.name + ".part")
        query = _training_data_query(format, since, until, sources, include_sensitive)
        path = f"models/{_path_part(model)}/training-data/"

        def download_once() -> None:
            with self._open("GET", path, query=query) as answer, partial.open("wb") as file:
                shutil.copyfileobj(answer, file, STREAM_CHUNK_BYTES)
                _check_complete(answer)

        try:
            self._call(download_once, idempotent=True, what=f"GET {path}")
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target

    def iter_training_data(
        self,
        model: str,
        *,
        format: TrainingDataFormat = "jsonl",
        since: Moment | None = None,
        until: Moment | None = None,
        sources: Sequence[str] | None = None,
        include_sensitive: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """The same export as ``download_training_data``, one case at a time, as it streams in.

        JSON Lines rows keep the features as an object; CSV rows are dicts of strings keyed by column
        (``feature.<name>``, ``label``...). The request is sent when the iteration starts. A connection lost
        mid-stream raises ``HitlConnectionError`` (rows already yielded are not sent again).
        """
        query = _training_data_query(format, since, until, sources, include_sensitive)
        path = f"models/{_path_part(model)}/training-data/"
        answer = self._call(lambda: self._open("GET", path, query=query), idempotent=True, what=f"GET {path}")
        with answer:
            try:
                lines = _complete_lines(answer)
                if format == "csv":
                    yield from csv.DictReader(line.decode("utf-8") for line in lines)
                else:
                    yield from (json.loads(line) for line in lines if line.strip())
            except NETWORK_ERRORS as error:
                raise HitlConnectionError(f"The training data of {model} stopped arriving: {error}") from error

    # --- transport ---

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        url = f"{self.base_url}{API_PREFIX}/{path}"
        if query:
            url += "?" + urlencode({name: _query_value(value) for name, value in query.items()}, doseq=True)
        return url

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> http.client.HTTPResponse:
        request = Request(self._url(path, query), data=data, method=method)
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        if content_type:
            request.add_header("Content-Type", content_type)
        if self.token:
            # Unredirected: a redirect to another host must not carry the token along.
            request.add_unredirected_header("Authorization", f"Token {self.token}")
        return self._opener.open(request, timeout=self.timeout)

    def _json(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request and decode its JSON answer; GET is idempotent unless said otherwise."""
        if body is not None:
            data = json.dumps(body, allow_nan=False).encode()
            content_type = "application/json"
        elif method != "GET" and data is None:
            data = b""

        def once() -> Any:
            with self._open(method, path, query=query, data=data, content_type=content_type) as answer:
                raw = answer.read()
                status = answer.status
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError as exc:
                raise HitlError(f"{method} {path} answered {status} with something that is not JSON.") from exc

        if idempotent is None:
            idempotent = method == "GET"
        return self._call(once, idempotent=idempotent, what=f"{method} {path}")

    def _call(self, once: Callable[[], T], *, idempotent: bool, what: str) -> T:
        """Run ``once`` (one request), again after a network error or 502/503/504 when the request is idempotent."""
        attempt = 0
        while True:
            try:
                return once()
            except HTTPError as answer:
                error = _api_error(answer)
                delay = self._retry_delay(attempt, error) if idempotent else None
                if delay is None:
                    raise error from None
            except NETWORK_ERRORS as failure:
                if not idempotent:
                    raise HitlConnectionError(
                        f"{what} failed and was not sent again: it may or may not have been done, check before "
                        f"sending it again ({failure})"
                    ) from failure
                if attempt >= self.retries:
                    raise HitlConnectionError(f"{what} failed after {attempt + 1} attempts: {failure}") from failure
                delay = self.backoff * 2**attempt
            attempt += 1
            time.sleep(delay)

    def _retry_delay(self, attempt: int, error: HitlApiError) -> float | None:
        """Seconds to wait before resending after ``error``, or None to raise it."""
        if error.status not in RETRY_STATUSES or attempt >= self.retries:
            return None
        if error.retry_after is not None:
            return error.retry_after if error.retry_after <= self.max_retry_after else None
        return self.backoff * 2**attempt

    def _pages(self, path: str, query: Mapping[str, Any]) -> Iterator[Any]:
        """Every item of a cursor-paginated list, fetching the next page as the previous one is used up."""
        query = dict(query)
        while True:
            page = self._json("GET", path, query=query)
            yield from page["results"]
            if not page.get("next"):
                return
            # The next page's address may name another host (a proxy's view); its cursor is all that is needed.
            query["cursor"] = parse_qs(urlsplit(page["next"]).query)["cursor"][0]

    def _wait_for_job(self, path: str, timeout: float, poll_interval: float, name: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            job = self._json("GET", path)
            if job["status"] in FINISHED_JOB_STATUSES:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HitlWaitTimeout(f"{name} is still {job['status']} after {timeout:g} s.", last=job)
            time.sleep(min(poll_interval, remaining))


def _api_error(answer: HTTPError) -> HitlApiError:
    """The error of an error answer, whose body is JSON from the API or anything from a proxy in between."""
    try:
        raw = answer.read()
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        answer.close()
    try:
        body: Any = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode("utf-8", "replace")
    retry_after = _retry_after_seconds(answer.headers.get("Retry-After"))
    return HitlApiError.from_body(answer.code, body, reason=answer.reason, retry_after=retry_after)


def _check_complete(answer: http.client.HTTPResponse) -> None:
    """Reading in chunks ends quietly at a connection closed early: check every byte announced has come."""
    if answer.length:
        raise http.client.IncompleteRead(b"", answer.length)


def _complete_lines(answer: http.client.HTTPResponse) -> Iterator[bytes]:
    """The answer's lines; a last line cut short by a lost connection is raised, never passed on as a row."""
    for line in answer:
        if not line.endswith(b"\n"):
            _check_complete(answer)
        yield line
    _check_complete(answer)


def _checked_prediction(item: Any, position: int, seen: set[str]) -> dict[str, Any]:
    """The prediction as a dict, refused without its own external_id: a retry could then store it twice."""
    if not isinstance(item, Mapping):
        raise TypeError(f"Prediction {position} is a {type(item).__name__}, not a mapping.")
    external_id = item.get("external_id")
    if not isinstance(external_id, str) or not external_id.strip():
        raise ValueError(f"Prediction {position} has no external_id: it is what makes a resent batch safe.")
    if external_id in seen:
        raise ValueError(f"Prediction {position} repeats the external_id {external_id!r}.")
    seen.add(external_id)
    return dict(item)


def _training_data_query(
    format: str, since: Moment | None, until: Moment | None, sources: Sequence[str] | None, include_sensitive: bool
) -> dict[str, Any]:
    if format not in ("csv", "jsonl"):
        raise ValueError("format must be 'csv' or 'jsonl'.")
    return _given(
        format=format,
        since=since,
        until=until,
        source=list(sources) if sources is not None else None,
        include_sensitive=include_sensitive or None,
    )
