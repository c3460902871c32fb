import re

from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework import exceptions
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class StandardCursorPagination(CursorPagination):
    """Stable, COUNT-free pages for lists that grow without bound; newest first by default."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"
    cursor_query_description = "The page to fetch: copy it from the `next` or `previous` link of the page before."

    def get_page_size(self, request):
        # DRF quietly serves its default for a page_size it cannot use; a caller asking for 0 or 5000 rows
        # would read the default page as the answer, so it is told instead.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[0-9]{1,9}", raw) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"Give a whole number from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Rows per page, from 1 to {self.max_page_size} (default {self.page_size}); "
                    "any other value is refused with a 400."
                )
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                }
        return parameters

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        # A cursor is client input: DRF checks its offset but not its position, which it compares with the
        # ordering column, so a forged position such as "abc" against an id would fail in the database.
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        try:
            field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        except FieldDoesNotExist:
            # Ordering across a relation ("model__name"): nothing to check the position against here.
            return cursor
        try:
            field.to_python(cursor.position)
        except ValidationError as exc:
            raise NotFound(self.invalid_cursor_message) from exc
        return cursor
