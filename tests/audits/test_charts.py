"""The console's SVG charts: what a reader of the dashboard sees in them."""

from audits.charts import Series, horizontal_bars_svg


def test_a_long_model_name_is_shortened_beside_its_bar_and_shown_whole_on_hover():
    name = "consumer-credit-europe-gradient-boosting-2026"
    svg = horizontal_bars_svg(
        title="Cases per model", labels=[name, "loans"], series=[Series("automatic", "auto", [8, 2])]
    )

    assert f"<title>{name}</title>consumer-credit-europe-gr…</text>" in svg
    assert "<title>loans</title>loans</text>" in svg
