"""Markdown written by people (a model's review guidelines) turned into HTML that is safe to put on a page.

markdown-it-py renders CommonMark; raw HTML in the source is escaped rather than passed through, and nh3 then
keeps only a small set of tags and attributes, so that neither a `<script>`, an event handler, an inline style
nor a `javascript:` link written into the guidelines ever reaches a reviewer's browser. Links may point to
http, https and mailto addresses only, and carry rel="noopener noreferrer nofollow": the guidelines are written
in the console, and a reviewer following one must not hand the page to the target.
"""

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {"p", "strong", "em", "ul", "ol", "li", "a", "code", "pre", "h3", "h4", "h5", "h6", "blockquote", "br"}
)
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
HEADING_SHIFT = 2

# "commonmark" with raw HTML off: a tag typed into the guidelines shows as text instead of being dropped silently.
_renderer = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})


def markdown_safe(text: str) -> SafeString:
    """``text`` as Markdown, rendered and sanitised: only ALLOWED_TAGS, and links to ALLOWED_URL_SCHEMES only.

    Headings move down two levels (``#`` becomes h3, ``####`` and below h6): the guidelines sit inside a page
    that has its own h1 and h2. An image is dropped; a disallowed link stays as its text.
    """
    if not text or not text.strip():
        return mark_safe("")
    tokens = _renderer.parse(text)
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + HEADING_SHIFT, 6)}"
    html = _renderer.renderer.render(tokens, _renderer.options, {})
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )
    # Safe because nh3 has just reduced it to the allow-list above.
    return mark_safe(cleaned)
