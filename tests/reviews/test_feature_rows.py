"""The order a reviewer reads a case's features in."""

from reviews.selectors.queue import feature_rows

SCHEMA = {
    "type": "object",
    "properties": {"age": {"type": "integer"}, "duration": {"type": "integer"}, "credit_amount": {"type": "number"}},
    "x-feature-order": ["credit_amount", "duration", "age"],
}


def test_features_follow_the_schemas_declared_order_whatever_order_the_database_kept():
    # PostgreSQL's jsonb hands keys back shortest first, not in the order they were sent.
    stored = {"age": 41, "note": "walk-in", "duration": 24, "credit_amount": 4200.0}

    rows = feature_rows(stored, schema=SCHEMA, sensitive=frozenset())

    assert [row.key for row in rows] == ["credit_amount", "duration", "age", "note"]


def test_without_a_declared_order_the_features_keep_the_order_they_came_in():
    schema = {key: value for key, value in SCHEMA.items() if key != "x-feature-order"}

    rows = feature_rows({"duration": 24, "age": 41}, schema=schema, sensitive=frozenset())

    assert [row.key for row in rows] == ["duration", "age"]
