"""Reads for the prediction API: which models a user may see, predictions with their outcome, decisions feed.

Who sees what is the registry's rule (``models_registry.selectors``): the model's owner and team see its
predictions and decisions, compliance officers and administrators see every model's, everybody else gets the
same 404 as for a model that does not exist. Writes (intake, outcomes) are for the owner, the team and
administrators.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth.models import AnonymousUser
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from hitl_platform.types import RequestUser
from models_registry.choices import Stage
from models_registry.models import MLModel, ModelVersion
from models_registry.selectors import ml_models_readable_by, ml_models_writable_by, user_reads_every_model
from reviews.models import Decision, Prediction, RoutingPolicy, Webhook

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class PolicyVersion(TypedDict):
    history_id: int


if TYPE_CHECKING:
    # A routing policy read with its version: the id of its newest history row, which a case routed under it records.
    VersionedRoutingPolicy = WithAnnotations[RoutingPolicy, PolicyVersion]


def model_for_intake(*, name: str, user: RequestUser) -> MLModel:
    """The model a user submits predictions to: one they may change, else the registry's 404."""
    model = ml_models_writable_by(user).filter(name=name).first()
    if model is None:
        raise Http404(f"No model named {name!r} that you can access.")
    return model


def routing_policy_for_model(*, model: MLModel) -> "VersionedRoutingPolicy | None":
    """The model's policy with whoever last flipped its stop switch (named in routing reasons) and, as
    ``history_id``, the id of its newest history row: the version a case routed under it records, read in the
    same statement as the settings so the two always agree."""
    newest = (
        RoutingPolicy.history.model.objects.filter(id=OuterRef("pk")).order_by("-history_id").values("history_id")[:1]
    )
    return (
        RoutingPolicy.objects.select_related("model", "stop_switch_changed_by")
        .annotate(history_id=Subquery(newest))
        .filter(model=model)
        .first()
    )


def versions_for_intake(*, model: MLModel, numbers: set[int]) -> list[ModelVersion]:
    """The versions a batch names, plus the production version that items without one default to."""
    return list(
        ModelVersion.objects.filter(model=model)
        .filter(Q(number__in=numbers) | Q(stage=Stage.PRODUCTION))
        .only("id", "model_id", "number", "stage", "artifact", "artifact_sha256")
    )


def existing_predictions_by_external_id(*, model: MLModel, external_ids: list[str]) -> dict[str, Mapping[str, Any]]:
    """Stored predictions among these external ids, with their decision and task: one IN query."""
    rows = Prediction.objects.filter(model=model, external_id__in=external_ids).values(
        "id",
        "external_id",
        "payload_sha256",
        "route",
        "route_reasons",
        "decision__final_label",
        "decision__source",
        "review_task__id",
    )
    return {row["external_id"]: row for row in rows}


def prediction_get_for_user(*, prediction_id: int, user: RequestUser, for_write: bool = False) -> Prediction:
    """One prediction with its version, decision and review task, if the user may see (or, ``for_write``,
    change) its model; else 404."""
    models = ml_models_writable_by(user) if for_write else ml_models_readable_by(user)
    prediction = predictions_for_user(user=user).filter(pk=prediction_id, model__in=models).first()
    if prediction is None:
        raise Http404("No such prediction.")
    return prediction


def decisions_for_user(*, user: RequestUser) -> QuerySet[Decision]:
    """Final decisions of the models a user may see, oldest first, for downstream consumers (filters: the API's)."""
    decisions = Decision.objects.select_related("model", "prediction", "prediction__version", "decided_by").only(
        "id",
        "final_label",
        "source",
        "agreement",
        "reviewers",
        "reason",
        "decided_at",
        "decided_by__username",
        "model__name",
        "prediction__id",
        "prediction__external_id",
        "prediction__policy_history_id",
        "prediction__policy_sha256",
        "prediction__version__number",
    )
    if not user_reads_every_model(user):
        decisions = decisions.filter(model__in=ml_models_readable_by(user))
    return decisions


def predictions_for_user(*, user: RequestUser) -> QuerySet[Prediction]:
    """Cases of the models a user may see, with what the case API shows of each (never sensitive attributes)."""
    predictions = Prediction.objects.select_related(
        "model", "version", "decision", "review_task", "outcome_reported_by"
    ).defer("sensitive_attributes")
    if not user_reads_every_model(user):
        predictions = predictions.filter(model__in=ml_models_readable_by(user))
    return predictions


def webhooks_of_owner(*, owner: RequestUser) -> QuerySet[Webhook]:
    """The active webhooks a user registered; a deleted webhook is deactivated and no longer listed."""
    if isinstance(owner, AnonymousUser):
        return Webhook.objects.none()
    return Webhook.objects.filter(owner=owner, is_active=True).select_related("model").order_by("id")
