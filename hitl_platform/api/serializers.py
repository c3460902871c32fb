"""Serializer building blocks shared by every app's API."""

import json
from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictInputMixin:
    """Refuses input fields the serializer does not declare: a typo is an error, never silently ignored.

    The OpenAPI schema says so (``additionalProperties: false``, see ``hitl_platform.api.schema``).
    """

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(name) for name in data if name not in writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class StrictSerializer(StrictInputMixin, serializers.Serializer):
    """An input serializer that refuses fields it does not declare."""


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of quietly turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


@extend_schema_field(OpenApiTypes.OBJECT)
class JSONObjectField(serializers.Field):
    """A JSON object, given as one in a JSON body or as a string holding one in a multipart form."""

    default_error_messages = {
        "invalid_json": "Not valid JSON: {error}.",
        "not_object": "Expected a JSON object.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data, parse_constant=_refuse_constant)
            except ValueError as exc:
                self.fail("invalid_json", error=exc)
            except RecursionError:
                self.fail("invalid_json", error="nested too deeply")
        if not isinstance(data, dict):
            self.fail("not_object")
        return data

    def to_representation(self, value):
        return value
