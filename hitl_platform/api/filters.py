"""Query parameters of list endpoints: filters declared with django-filter, and nothing silently ignored.

A misspelt filter (``?externalid=...``) would otherwise return the whole list, which a caller reads as "these are
the matches". ``StrictFilterBackend`` answers 400 naming every query parameter the endpoint does not know: its
filters, its pagination (``cursor``, ``page_size``) and nothing else.
"""

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter's backend that refuses unknown query parameters with a 400."""

    def filter_queryset(self, request, queryset, view):
        known = set(self._filter_names(request, queryset, view)) | self._pagination_names(view)
        unknown = sorted(name for name in request.query_params if name not in known)
        if unknown:
            accepted = ", ".join(sorted(known)) or "none"
            raise ValidationError(
                {name: [f"Unknown query parameter. This endpoint accepts: {accepted}."] for name in unknown}
            )
        return super().filter_queryset(request, queryset, view)

    def _filter_names(self, request, queryset, view) -> list[str]:
        filterset_class = self.get_filterset_class(view, queryset)
        return list(filterset_class.base_filters) if filterset_class is not None else []

    @staticmethod
    def _pagination_names(view) -> set[str]:
        paginator = getattr(view, "paginator", None)
        if paginator is None:
            return set()
        names = {getattr(paginator, "cursor_query_param", None), getattr(paginator, "page_size_query_param", None)}
        return {name for name in names if name}
