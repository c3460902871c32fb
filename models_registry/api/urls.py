from django.urls import path

from models_registry.api import views

urlpatterns = [
    path("models/", views.MLModelListCreateView.as_view(), name="model-list"),
    path("models/<slug:name>/", views.MLModelDetailView.as_view(), name="model-detail"),
    path("models/<slug:name>/versions/", views.ModelVersionListCreateView.as_view(), name="version-list"),
    path(
        "models/<slug:name>/versions/<int:number>/",
        views.ModelVersionDetailView.as_view(),
        name="version-detail",
    ),
    path(
        "models/<slug:name>/versions/<int:number>/promotion-requests/",
        views.PromotionRequestListCreateView.as_view(),
        name="version-promotion-requests",
    ),
    path(
        "promotion-requests/<int:request_id>/",
        views.PromotionRequestDetailView.as_view(),
        name="promotion-request-detail",
    ),
]
