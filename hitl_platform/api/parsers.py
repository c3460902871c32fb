"""Request parsers that turn every malformed body into a 400, never a 500."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus: a body nested deeper than Python's recursion limit is a parse error.

    ``json.loads("[" * 100_000)`` raises ``RecursionError``, which DRF does not catch (it catches ``ValueError``),
    so a 200 kB request could otherwise produce a server error.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the document is nested too deeply.") from exc
