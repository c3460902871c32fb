import io
import pickle

import factory
import joblib
import numpy as np
import skops.io as sio
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models_registry.choices import ModelTask, RiskTier, Stage
from models_registry.models import MLModel, ModelVersion, PromotionRequest
from tests.factories import UserFactory

CREDIT_FEATURE_SCHEMA = {
    "type": "object",
    "properties": {
        "credit_amount": {"type": "number", "minimum": 0},
        "duration": {"type": "integer", "minimum": 1},
        "age": {"type": "integer", "minimum": 18},
    },
    "required": ["credit_amount", "duration", "age"],
    "additionalProperties": False,
}
CREDIT_FEATURES = ["credit_amount", "duration", "age"]


def trained_credit_pipeline(seed: int = 0):
    """A small real scikit-learn pipeline over the credit features: approve when the loan is modest."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(250, 20000, 400), rng.integers(4, 72, 400), rng.integers(19, 75, 400)])
    y = np.where(X[:, 0] / X[:, 1] < 300, "approve", "deny")
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)


def skops_bytes(estimator=None) -> bytes:
    buffer = io.BytesIO()
    sio.dump(estimator if estimator is not None else trained_credit_pipeline(), buffer)
    return buffer.getvalue()


class MLModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MLModel

    name = factory.Sequence(lambda n: f"credit-model-{n}")
    description = "Scores consumer credit applications."
    task = ModelTask.BINARY
    labels = ["approve", "deny"]
    positive_label = "approve"
    feature_schema = factory.LazyFunction(lambda: dict(CREDIT_FEATURE_SCHEMA))
    sensitive_attributes = ["sex", "age_band"]
    risk_tier = RiskTier.MEDIUM
    owner = factory.SubFactory(UserFactory)
    intended_use = "Pre-screening of consumer credit applications."


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """A version without a file (caller-scored). Use ``with_artifact=True`` for a real skops pipeline."""

    class Meta:
        model = ModelVersion
        skip_postgeneration_save = True

    model = factory.SubFactory(MLModelFactory)
    number = factory.Sequence(lambda n: n + 1)
    stage = Stage.CANDIDATE
    metrics = factory.LazyFunction(lambda: {"accuracy": 0.91})
    created_by = factory.SelfAttribute("model.owner")

    @factory.post_generation
    def with_artifact(self, create, extracted, **kwargs):
        if not extracted:
            return
        import hashlib

        content = skops_bytes()
        self.artifact_sha256 = hashlib.sha256(content).hexdigest()
        self.artifact_size = len(content)
        self.artifact.save("model.skops", ContentFile(content), save=False)
        self.save()


class PromotionRequestFactory(factory.django.DjangoModelFactory):
    """A pending request by the version's registrant; decide it with ``promotion_request_decide``."""

    class Meta:
        model = PromotionRequest

    version = factory.SubFactory(ModelVersionFactory)
    target_stage = Stage.PRODUCTION
    requester = factory.SelfAttribute("version.created_by")
    rationale = "Beats the current version on the holdout set."


def skops_upload(content: bytes | None = None, name: str = "model.skops") -> SimpleUploadedFile:
    """A model file as an ML engineer's script uploads it (a real pipeline unless ``content`` is given)."""
    return SimpleUploadedFile(name, content if content is not None else skops_bytes(), "application/octet-stream")


def pickle_bytes(estimator=None) -> bytes:
    return pickle.dumps(estimator if estimator is not None else trained_credit_pipeline())


def joblib_bytes(estimator=None, compress: int = 0) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator if estimator is not None else trained_credit_pipeline(), buffer, compress=compress)
    return buffer.getvalue()
