"""The OpenAPI schema tells the truth about errors: every operation documents the error statuses it can answer.

drf-spectacular documents the success responses an operation declares; the errors every view can raise come from
the framework and are the same across the API, so they are added here once, with the bodies our exception handler
really sends (``hitl_platform.api.exceptions``): ``{"detail": "..."}`` for 401, 403, 404, 409, 413 and 429, and
field errors (``{"field": ["message", ...]}``) for 400. An operation that declares a status itself (intake's 400
and 409 bodies, for example) keeps its own description. Input serializers that refuse unknown fields
(``StrictInputMixin``) are documented with ``additionalProperties: false``.

Component names are those of the resources, not of our serializers: ``MLModelOutputSerializer`` is documented as
``MLModel`` and ``MLModelCreateInputSerializer`` as ``MLModelCreateRequest`` (drf-spectacular adds ``Request`` to
every request body's component, as COMPONENT_SPLIT_REQUEST is on, so ``TokenRequestSerializer`` becomes
``TokenRequest``, never ``TokenRequestRequest``).
"""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework.permissions import AllowAny

DETAIL_BODY = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "What is wrong, in words."}},
    "required": ["detail"],
}
FIELD_ERRORS_BODY = {
    "type": "object",
    "description": 'Field errors: each field names its problems, e.g. {"metrics": ["Expected a JSON object."]}; '
    'problems of the request as a whole are under "non_field_errors" or "detail".',
    "additionalProperties": {},
}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Our serializers say which way they go; the schema's components say it once, by direction.
DIRECTION_SUFFIXES = ("Input", "Output")


class HitlAutoSchema(AutoSchema):
    """drf-spectacular's schema plus the error responses every operation of ours can give."""

    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction).removesuffix("Serializer")
        for suffix in DIRECTION_SUFFIXES:
            name = name.removesuffix(suffix)
        if direction == "request":
            # drf-spectacular appends "Request" to every request component.
            name = name.removesuffix("Request")
        return name

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses

        def document(code: str, body: dict, description: str) -> None:
            if code not in responses:
                response = self._get_response_for_code(body, code, direction=direction)
                response["description"] = description
                responses[code] = response

        view = self.view
        needs_login = not all(isinstance(permission, AllowAny) for permission in view.get_permissions())
        # Every operation reads input (a body, a query or at least a path) that can be refused field by field.
        document("400", FIELD_ERRORS_BODY, "The request is invalid: what is wrong, by field.")
        if needs_login:
            document("401", DETAIL_BODY, "No valid API token (or session) was sent.")
            document("403", DETAIL_BODY, "Your role does not allow this.")
        if "{" in self.path:
            document("404", DETAIL_BODY, "Nothing by that name or id that you can access.")
        if self.method in WRITE_METHODS:
            document("413", DETAIL_BODY, "The request body is larger than this server accepts.")
        if getattr(view, "throttle_classes", ()):
            document("429", DETAIL_BODY, "Too many requests; try again later (see Retry-After).")
        return responses


class StrictInputExtension(OpenApiSerializerExtension):
    """A serializer with ``StrictInputMixin`` refuses fields it does not declare: say so in the schema."""

    target_class = "hitl_platform.api.serializers.StrictInputMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        if direction == "request":
            schema["additionalProperties"] = False
        return schema
