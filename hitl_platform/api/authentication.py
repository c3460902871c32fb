"""The API's authentication classes, kept free of view imports: DRF imports them while loading its settings."""

from knox import auth as knox_auth
from rest_framework import exceptions


class TokenAuthentication(knox_auth.TokenAuthentication):
    """knox's token authentication, refusing a header that is not UTF-8 with a 401 (knox raises a 500)."""

    def authenticate_credentials(self, token: bytes):
        try:
            token.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        return super().authenticate_credentials(token)
