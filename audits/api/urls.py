from django.urls import path

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
    path("audits/<int:pk>/", BiasAuditDetailView.as_view(), name="audit-detail"),
]
