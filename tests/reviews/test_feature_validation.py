"""The fast feature check accepts exactly what the JSON Schema reference accepts, and explains every rejection."""

import pytest
from jsonschema.validators import validator_for

from models_registry.features import FeatureValidator

CREDIT = {
    "type": "object",
    "properties": {
        "credit_amount": {"type": "number", "minimum": 0, "maximum": 1_000_000},
        "duration": {"type": "integer", "minimum": 1},
        "purpose": {"type": "string", "enum": ["car", "education"]},
        "postcode": {"type": "string", "pattern": "^[0-9]{5}$", "maxLength": 5},
        "employed": {"type": "boolean"},
        "note": {"type": ["string", "null"], "minLength": 2},
    },
    "required": ["credit_amount", "duration"],
    "additionalProperties": False,
    "x-feature-order": ["credit_amount", "duration"],
}
NON_PORTABLE = {
    "type": "object",
    "properties": {"flag": {"enum": [1, 2]}, "score": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
}
INSTANCES = [
    {"credit_amount": 1200.5, "duration": 12},
    {"credit_amount": 0, "duration": 1, "purpose": "car", "postcode": "10115", "employed": True, "note": None},
    {"credit_amount": True, "duration": 12},
    {"credit_amount": 1200, "duration": 12.0},
    {"credit_amount": 1200, "duration": 12.5},
    {"credit_amount": 1200, "duration": True},
    {"credit_amount": -1, "duration": 12},
    {"credit_amount": 2_000_000, "duration": 12},
    {"credit_amount": "1200", "duration": 12},
    {"credit_amount": 1200},
    {"credit_amount": 1200, "duration": 12, "purpose": "boat"},
    {"credit_amount": 1200, "duration": 12, "postcode": "1011"},
    {"credit_amount": 1200, "duration": 12, "postcode": "101155"},
    {"credit_amount": 1200, "duration": 12, "employed": 1},
    {"credit_amount": 1200, "duration": 12, "note": "x"},
    {"credit_amount": 1200, "duration": 12, "unknown": 1},
    {"flag": True},
    {"flag": 1, "score": None},
    {"flag": 3, "score": 1.5},
    [],
    "text",
]


@pytest.mark.parametrize("schema", [CREDIT, NON_PORTABLE], ids=["portable", "non-portable"])
@pytest.mark.parametrize("instance", INSTANCES)
def test_the_fast_check_agrees_with_the_reference_validator(schema, instance):
    reference = validator_for(schema)(schema)

    problems = list(FeatureValidator(schema).problems(instance))

    assert (problems == []) == reference.is_valid(instance)


def test_a_rejection_names_the_field_and_what_is_wrong():
    problems = list(FeatureValidator(CREDIT).problems({"credit_amount": -5, "duration": 12, "purpose": "boat"}))

    assert ("credit_amount", "-5 is less than the minimum of 0") in problems
    assert any(path == "purpose" and "'boat' is not one of" in message for path, message in problems)


def test_true_is_not_accepted_for_an_enumeration_of_numbers():
    assert list(FeatureValidator(NON_PORTABLE).problems({"flag": True}))
