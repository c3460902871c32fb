"""API tokens: exchanged for a username and password, stored hashed (knox), expiring, revocable.

knox keeps only a SHA-512 digest of each token and a short prefix to find it by; the token itself is shown
once, in the response that creates it. Tokens expire after ``REST_KNOX["TOKEN_TTL"]``; an expired token is
refused (401) and deleted. A token is revoked by its holder (``auth/token/revoke/``, or on the API tokens page,
/engineer/tokens/, where ML engineers also make named tokens) or by an administrator deleting it in the console.
Each creation and each revocation by a holder is recorded in the history of the token's details.
"""

from django.contrib.auth import authenticate
from django.contrib.auth.signals import user_logged_out
from django.utils import timezone
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from knox.views import LogoutView
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from hitl_platform.api.authentication import TokenAuthentication
from hitl_platform.api.serializers import StrictSerializer
from hitl_platform.client_address import client_ip
from hitl_platform.selectors import api_token_max_lifetime
from hitl_platform.tokens import api_token_create, api_token_revoke
from hitl_platform.types import authenticated_user


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents our token authentication: one token, sent after either prefix (each is a way to authenticate)."""

    target_class = "hitl_platform.api.authentication.TokenAuthentication"
    name = ["tokenAuth", "bearerAuth"]

    def get_security_requirement(self, auto_schema):
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema):
        obtain = "Get a token from POST /api/v1/auth/token/."
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": f"`Authorization: Token <token>`: the word Token, a space, then the token. {obtain}",
            },
            {
                "type": "http",
                "scheme": "bearer",
                "description": f"`Authorization: Bearer <token>`: the same token, for HTTP clients that speak Bearer. "
                f"{obtain}",
            },
        ]


class SessionAuthenticationScheme(SessionScheme):
    """Documents the browser's login session, which the docs page's "Try it out" uses."""

    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            **super().get_security_definition(auto_schema),
            "description": "The login session of your browser (the console's or the reviewer pages' login), as "
            "on this docs page. Writes also need the CSRF token: scripts send an API token instead.",
        }


class TokenRequestSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})

    def validate(self, attrs):
        request = self.context.get("request")
        # The Django request, not DRF's wrapper: django-axes marks a lockout on it for its middleware to answer.
        http_request = getattr(request, "_request", request)
        user = authenticate(request=http_request, username=attrs["username"], password=attrs["password"])
        if user is None or not user.is_active:
            raise serializers.ValidationError("Unable to log in with the given username and password.")
        attrs["user"] = user
        return attrs


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()
    expiry = serializers.DateTimeField(allow_null=True)


class TokenThrottle(ScopedRateThrottle):
    """The token endpoint's rate limit, keyed on the client address as the platform reads it everywhere."""

    def get_ident(self, request) -> str:
        return client_ip(request)


class ObtainTokenView(APIView):
    """Exchange a username and password for an API token. The token is shown once and stored hashed."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (TokenThrottle,)
    throttle_scope = "token"

    @extend_schema(
        summary="Get an API token",
        description="Exchange a username and password for an API token and its expiry. The token is shown only in "
        "this response (the server keeps a hash): store it, and send it on every call as `Authorization: Token "
        "<token>` or `Authorization: Bearer <token>`. A wrong username or password is a 400. A 429 (with "
        "Retry-After) means too many requests, or too many wrong passwords for the account or from your address "
        "(logging in is then locked for a while).",
        request=TokenRequestSerializer,
        responses={201: TokenResponseSerializer},
        tags=["Auth"],
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        created = api_token_create(
            user=serializer.validated_data["user"],
            name=f"API login {timezone.now():%Y-%m-%d %H:%M} UTC",
            lifetime=api_token_max_lifetime(),
            reason="Obtained with a username and password at the token endpoint",
        )
        return Response({"token": created.key, "expiry": created.details.expires_at}, status=status.HTTP_201_CREATED)


class RevokeTokenView(LogoutView):
    """Revoke the token this request was made with."""

    authentication_classes = (TokenAuthentication,)

    @extend_schema(
        summary="Revoke the token you call with",
        description="Deletes the token this request is authenticated with; later calls with it are refused with "
        "a 401. Other tokens of yours stay valid. Answers 204 with no body.",
        request=None,
        responses={204: None},
        tags=["Auth"],
    )
    def post(self, request, format=None):
        api_token_revoke(
            token=request._auth, actor=authenticated_user(request), reason="Revoked by its holder at the API"
        )
        user_logged_out.send(sender=request.user.__class__, request=request, user=request.user)
        return Response(None, status=status.HTTP_204_NO_CONTENT)
