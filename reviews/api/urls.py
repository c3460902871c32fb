from django.urls import path
from rest_framework.routers import SimpleRouter

from reviews.api.views import (
    DecisionListView,
    ModelPredictionsView,
    PredictionDetailView,
    PredictionListView,
    PredictionOutcomeView,
    WebhookViewSet,
)

router = SimpleRouter()
router.register("webhooks", WebhookViewSet, basename="webhook")

urlpatterns = [
    path("models/<slug:name>/predictions/", ModelPredictionsView.as_view(), name="model-predictions"),
    path("predictions/", PredictionListView.as_view(), name="prediction-list"),
    path("predictions/<int:pk>/", PredictionDetailView.as_view(), name="prediction-detail"),
    path("predictions/<int:pk>/outcome/", PredictionOutcomeView.as_view(), name="prediction-outcome"),
    path("decisions/", DecisionListView.as_view(), name="decision-list"),
    *router.urls,
]
