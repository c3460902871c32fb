"""API tokens: exchanged for a username and password, stored hashed (knox), expiring, revocable.

knox keeps only a SHA-512 digest of each token and a short prefix to find it by; the token itself is shown
once, in the response that creates it. Tokens expire after ``REST_KNOX["TOKEN_TTL"]``; an expired token is
refused (401) and deleted. A token is revoked by its holder (``auth/token/revoke/``) or by an administrator
deleting it in the console.
"""

from django.contrib.auth import authenticate
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from drf_spectacular.utils import extend_schema
from knox.models import AuthToken
from knox.views import LogoutView
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from hitl_platform.api.authentication import TokenAuthentication
from hitl_platform.api.serializers import StrictSerializer
from hitl_platform.client_address import client_ip


class TokenAuthenticationScheme(KnoxTokenScheme):
    """Documents our subclass in the OpenAPI schema as knox's own (``Authorization: Token <key>``)."""

    target_class = "hitl_platform.api.authentication.TokenAuthentication"
    name = "tokenAuth"


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

    @extend_schema(request=TokenRequestSerializer, responses={201: TokenResponseSerializer}, tags=["auth"])
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        instance, token = AuthToken.objects.create(user=serializer.validated_data["user"])
        return Response({"token": token, "expiry": instance.expiry}, status=status.HTTP_201_CREATED)


class RevokeTokenView(LogoutView):
    """Revoke the token this request was made with."""

    authentication_classes = (TokenAuthentication,)

    @extend_schema(request=None, responses={204: None}, tags=["auth"])
    def post(self, request, format=None):
        return super().post(request, format=format)
