"""Reads of the model registry, shaped for their callers (API lists and details, admin lists): one query per
list, whatever its length."""

from django.db.models import IntegerField, OuterRef, QuerySet, Subquery

from models_registry.choices import Stage
from models_registry.models import MLModel, ModelVersion, PromotionRequest


def ml_model_list() -> QuerySet[MLModel]:
    """Models with their owner, latest version number and current production version number."""
    versions = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-number").values("number")
    return MLModel.objects.select_related("owner").annotate(
        latest_version=Subquery(versions[:1], output_field=IntegerField()),
        production_version=Subquery(versions.filter(stage=Stage.PRODUCTION)[:1], output_field=IntegerField()),
    )


def model_version_list() -> QuerySet[ModelVersion]:
    """Versions with their model, registering user and parent, newest first within a model."""
    return ModelVersion.objects.select_related("model", "created_by", "parent").order_by("model_id", "-number")


def promotion_request_list() -> QuerySet[PromotionRequest]:
    """Promotion requests with their version, model, requester and decider."""
    return PromotionRequest.objects.select_related("version__model", "requester", "decided_by")
