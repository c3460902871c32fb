from csp.decorators import csp_update
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from hitl_platform import health, views
from hitl_platform.api.auth import ObtainTokenView, RevokeTokenView

api_v1 = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("auth/token/revoke/", RevokeTokenView.as_view(), name="auth-token-revoke"),
    path("", include("models_registry.api.urls")),
    path("", include("reviews.api.urls")),
    path("", include("audits.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's init script as a file of its own (docs/?script), as the CSP requires.
    # Swagger UI's stylesheet draws its icons as data: images, so this page alone may load those: an image runs
    # no script, and these come inside the stylesheet this server serves.
    path(
        "docs/",
        csp_update({"img-src": ["data:"]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-v1:schema", template_name="api/swagger_ui.html")
        ),
        name="docs",
    ),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api-v1"))),
    path("review/", include("reviews.urls")),
    path("engineer/", include("hitl_platform.engineer_urls")),
]

# JSON for API paths, a page with a way back for people (hitl_platform.errors also covers DEBUG on).
handler400 = "hitl_platform.errors.bad_request"
handler403 = "hitl_platform.errors.permission_denied"
handler404 = "hitl_platform.errors.page_not_found"
handler500 = "hitl_platform.errors.server_error"
