from rest_framework.pagination import CursorPagination


class StandardCursorPagination(CursorPagination):
    """Stable, COUNT-free pages for lists that grow without bound; newest first by default."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"
