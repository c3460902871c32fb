"""Review guidelines are Markdown: rendered for reviewers, and nothing a writer types can run in their browser."""

import pytest
from django.utils.safestring import SafeString

from hitl_platform.markdown import markdown_safe


def test_emphasis_lists_code_quotes_and_line_breaks_render_as_html():
    html = markdown_safe(
        "Deny when instalments exceed **40%** of *verified* income.\n\n"
        "- one\n- two\n\n1. first\n\n`code`\n\n    block\n\n> quoted\n\nline  \nbreak"
    )

    assert "<strong>40%</strong>" in html and "<em>verified</em>" in html
    assert "<ul>\n<li>one</li>" in html and "<ol>\n<li>first</li>" in html
    assert "<code>code</code>" in html and "<pre><code>block" in html
    assert "<blockquote>" in html and "line<br>" in html
    assert isinstance(html, SafeString)


def test_headings_move_below_the_pages_own_h1_and_h2():
    html = markdown_safe("# Top\n\n## Next\n\n### Third\n\n###### Sixth")

    assert "<h3>Top</h3>" in html and "<h4>Next</h4>" in html and "<h5>Third</h5>" in html
    assert "<h6>Sixth</h6>" in html
    assert "<h1" not in html and "<h2" not in html


def test_links_to_the_web_and_to_mail_addresses_open_safely():
    html = markdown_safe("[policy](https://intranet.example/policy) and [ask](mailto:risk@example.com)")

    assert '<a href="https://intranet.example/policy" rel="noopener noreferrer nofollow">policy</a>' in html
    assert '<a href="mailto:risk@example.com" rel="noopener noreferrer nofollow">ask</a>' in html


@pytest.mark.parametrize(
    "source",
    [
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        "[click](vbscript:msgbox(1))",
        '<a href="javascript:alert(1)">click</a>',
    ],
)
def test_a_script_link_is_never_a_link(source):
    html = markdown_safe(source)

    assert "<a " not in html
    assert "click" in html


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<p onclick="alert(1)">hi</p>',
        '<iframe src="https://evil.example"></iframe>',
        "<style>body{display:none}</style>",
        "<!-- hidden --><b>bold?</b>",
    ],
)
def test_raw_html_shows_as_text_and_never_as_markup(source):
    html = markdown_safe(source)

    for tag in ("<script", "<img", "<iframe", "<style", "<b>", "<p onclick"):
        assert tag not in html
    assert "&lt;" in html


def test_an_image_or_a_table_is_dropped_but_its_text_stays():
    html = markdown_safe("See ![chart](https://example.com/x.png) and <table><tr><td>cell</td></tr></table>")

    assert "<img" not in html and "<table" not in html
    assert "See" in html


def test_empty_guidelines_render_nothing():
    assert markdown_safe("") == ""
    assert markdown_safe("   \n ") == ""
