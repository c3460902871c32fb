from django.urls import path

from audits.api.retraining import RetrainingJobDetailView, RetrainingJobsOfModelView
from audits.api.thresholds import ModelThresholdRecommendationView
from audits.api.training_data import ModelTrainingDataView
from audits.api.views import (
    BiasAuditDetailView,
    BiasAuditsOfModelView,
    ExportDetailView,
    ExportDownloadView,
    ExportListCreateView,
)

urlpatterns = [
    path("exports/", ExportListCreateView.as_view(), name="export-list"),
    path("exports/<int:pk>/", ExportDetailView.as_view(), name="export-detail"),
    path("exports/<int:pk>/download/", ExportDownloadView.as_view(), name="export-download"),
    path("models/<slug:name>/audits/", BiasAuditsOfModelView.as_view(), name="model-audits"),
    path("models/<slug:name>/training-data/", ModelTrainingDataView.as_view(), name="model-training-data"),
    path(
        "models/<slug:name>/threshold-recommendation/",
        ModelThresholdRecommendationView.as_view(),
        name="model-threshold-recommendation",
    ),
    path("audits/<int:pk>/", BiasAuditDetailView.as_view(), name="audit-detail"),
    path("models/<slug:name>/retraining-jobs/", RetrainingJobsOfModelView.as_view(), name="model-retraining-jobs"),
    path("retraining-jobs/<int:pk>/", RetrainingJobDetailView.as_view(), name="retraining-job-detail"),
]
