"""The API's authentication classes, kept free of view imports: DRF imports them while loading its settings."""

import binascii
from hmac import compare_digest

from knox import auth as knox_auth
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS, knox_settings
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from hitl_platform.tokens import api_token_record_use

# "Token" is knox's own scheme; "Bearer" is what most HTTP clients and OAuth-minded tools send. Both carry the same
# token.
ACCEPTED_SCHEMES = (b"bearer", b"token")
INVALID_TOKEN = "Invalid token."
UNSUPPORTED_SCHEME = "Unsupported authorization scheme: send 'Authorization: Bearer <token>' (or 'Token <token>')."


def authorization_scheme_unsupported(request) -> bool:
    """Whether the request names an authorization scheme this API does not read."""
    header = get_authorization_header(request).split()
    return bool(header) and header[0].lower() not in ACCEPTED_SCHEMES


class TokenAuthentication(knox_auth.TokenAuthentication):
    """knox's token authentication, accepting ``Authorization: Bearer <token>`` beside ``Token <token>``.

    Unlike knox, it answers 401 (never 500) to a token that is not UTF-8, and notes when each token was last used
    (hitl_platform.tokens.api_token_record_use).
    """

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() not in ACCEPTED_SCHEMES:
            # Not ours (e.g. Basic added by a proxy): the session may still authenticate, as in DRF and knox.
            # When nothing does, the 401 names the accepted schemes (hitl_platform.api.exceptions).
            return None
        if len(header) == 1:
            raise exceptions.AuthenticationFailed("Invalid token header. No credentials provided.")
        if len(header) > 2:
            raise exceptions.AuthenticationFailed("Invalid token header. Token string should not contain spaces.")
        return self.authenticate_credentials(header[1])

    def authenticate_credentials(self, token: bytes):
        # knox's own lookup, loading each candidate's details in the same query so that noting the use of a token
        # costs no query unless a minute has passed since the last note.
        try:
            key = token.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from exc
        candidates = AuthToken.objects.filter(token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH]).select_related(
            "user", "details"
        )
        for auth_token in candidates:
            if self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(key)
            except (TypeError, binascii.Error) as exc:
                raise exceptions.AuthenticationFailed(INVALID_TOKEN) from exc
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                user, auth_token = self.validate_user(auth_token)
                api_token_record_use(token=auth_token)
                return user, auth_token
        raise exceptions.AuthenticationFailed(INVALID_TOKEN)
