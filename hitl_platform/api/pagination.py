from django.core.exceptions import FieldDoesNotExist, ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class StandardCursorPagination(CursorPagination):
    """Stable, COUNT-free pages for lists that grow without bound; newest first by default."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"

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
