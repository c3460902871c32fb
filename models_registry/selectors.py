"""Reads of the model registry, shaped for their callers (API lists and details, admin lists): one query per
list, whatever its length.

Who may see and change a model, decided here once for every app:

- read: the model's owner, members of its team (the Django group named on the model), and people who read every
  model (compliance officers and administrators: the ``view_every_model`` permission). Everybody else is told
  that no such model exists, exactly as for a name nobody registered, so the existence of another team's model is
  never disclosed.
- write (versions, promotion requests, predictions, outcomes, webhooks, the model card): the owner, team members
  and administrators. Reading every model does not make a compliance officer a writer.
"""

from typing import TYPE_CHECKING, TypedDict, TypeVar, overload

from django.db.models import IntegerField, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from hitl_platform.types import RequestUser
from models_registry.choices import Stage
from models_registry.models import MLModel, ModelVersion, PromotionRequest

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class VersionNumbers(TypedDict):
    latest_version: int | None
    production_version: int | None


if TYPE_CHECKING:
    # A model read by ``ml_model_list``, with the numbers of its latest and its production version (None if none).
    ListedModel = WithAnnotations[MLModel, VersionNumbers]

# A queryset of models, kept as it is (its annotations included) by the filters below.
ModelQuerySet = TypeVar("ModelQuerySet", bound=QuerySet[MLModel])


def ml_model_list() -> "QuerySet[ListedModel]":
    """Models with their owner, latest version number and current production version number."""
    versions = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-number").values("number")
    return MLModel.objects.select_related("owner", "team").annotate(
        latest_version=Subquery(versions[:1], output_field=IntegerField()),
        production_version=Subquery(versions.filter(stage=Stage.PRODUCTION)[:1], output_field=IntegerField()),
    )


def model_version_list() -> QuerySet[ModelVersion]:
    """Versions with their model, registering user and parent, newest first within a model."""
    return ModelVersion.objects.select_related("model", "created_by", "parent").order_by("model_id", "-number")


LINEAGE_DEPTH = 50


def model_version_ancestors(version: ModelVersion) -> list[ModelVersion]:
    """The version's parent, its parent's parent, and so on (nearest first; a long chain is cut at 50)."""
    ancestors: list[ModelVersion] = []
    current = version.parent
    while current is not None and len(ancestors) < LINEAGE_DEPTH:
        ancestors.append(current)
        parent_id = current.parent_id
        current = (
            ModelVersion.objects.select_related("parent").filter(pk=parent_id).first()
            if parent_id is not None
            else None
        )
    return ancestors


def promotion_request_list() -> QuerySet[PromotionRequest]:
    """Promotion requests with their version, model, requester and decider."""
    return PromotionRequest.objects.select_related(
        "version__model__owner", "version__model__team", "requester", "decided_by"
    )


READ_EVERY_MODEL_PERMISSION = "models_registry.view_every_model"


def user_reads_every_model(user: RequestUser) -> bool:
    """Compliance officers and administrators read every team's models; the permission is cached per request."""
    return user.is_active and user.has_perm(READ_EVERY_MODEL_PERMISSION)


def _works_on(user: RequestUser) -> Q:
    return Q(owner_id=user.pk) | Q(team_id__in=user.groups.values("pk"))


@overload
def ml_models_readable_by(user: RequestUser) -> QuerySet[MLModel]: ...
@overload
def ml_models_readable_by(user: RequestUser, models: ModelQuerySet) -> ModelQuerySet: ...
def ml_models_readable_by(user: RequestUser, models: QuerySet[MLModel] | None = None) -> QuerySet[MLModel]:
    """The models (of ``models``, default all) this user may read."""
    models = MLModel.objects.all() if models is None else models
    if not user.is_authenticated or not user.is_active:
        return models.none()
    return models if user_reads_every_model(user) else models.filter(_works_on(user))


def ml_models_writable_by(user: RequestUser, models: QuerySet[MLModel] | None = None) -> QuerySet[MLModel]:
    """The models (of ``models``, default all) whose versions, requests, cases and webhooks this user may change."""
    models = MLModel.objects.all() if models is None else models
    if not user.is_authenticated or not user.is_active:
        return models.none()
    return models if user.is_superuser else models.filter(_works_on(user))


def user_may_write_model(user: RequestUser, model: MLModel) -> bool:
    """Whether ``user`` works on ``model`` (owner, team member) or administers the platform; no query for owners."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser or model.owner_id == user.pk:
        return True
    return model.team_id is not None and user.groups.filter(pk=model.team_id).exists()


def model_readable_by_name(*, user: RequestUser, name: str) -> MLModel:
    """The model of this name if ``user`` may read it, else the same 404 as a model that does not exist."""
    model = ml_models_readable_by(user).filter(name=name).first()
    if model is None:
        raise Http404(f"No model named {name!r} that you can access.")
    return model
