from django.urls import path

from hitl_platform import engineer_views

app_name = "engineers"

urlpatterns = [
    path("", engineer_views.engineer_home, name="home"),
    path("tokens/", engineer_views.api_tokens, name="tokens"),
    path("tokens/<slug:digest>/revoke/", engineer_views.api_token_revoke_confirm, name="token-revoke"),
]
