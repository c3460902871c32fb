"""The routing policy's change form in the console: settings with names people use, rules and label thresholds as rows.

The form only reads what was typed: each rule row is checked against the model's feature schema (a known feature,
an operator its type can be compared with, a value of its type) and by the router's own ``Rule.from_dict``, so
every problem is shown on its row. The service (``routing_policy_update``) checks every value again and is the
only writer, with the required reason, history and ledger.
"""

import math
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.formsets import DELETION_FIELD_NAME
from django.utils.functional import cached_property

from models_registry.models import MLModel
from models_registry.scoring import FEATURE_ORDER_KEYWORD
from reviews.models import RoutingPolicy
from reviews.routing import ESCALATE, OPERATOR_WORDS, OPERATORS, REVIEW, Rule, RuleError
from reviews.services.policies import EDITABLE_FIELDS

# Empty rows offered under the stored ones: enough to add rules without the page's script.
EMPTY_ROWS = 3
MAX_ROWS = 200
MAX_RULE_TEXT_LENGTH = 500
# Rows are edited as formsets; every other editable setting is a field of the form itself.
ROW_SETTINGS = ("rules", "label_thresholds")
SETTING_FIELDS = [name for name in EDITABLE_FIELDS if name not in ROW_SETTINGS]
OPERATOR_CHOICES = [("", "---------")] + [
    (operator, operator if OPERATOR_WORDS[operator] == operator else f"{operator} ({OPERATOR_WORDS[operator]})")
    for operator in OPERATORS
]
ACTION_CHOICES = [("", "---------"), (REVIEW, "Review"), (ESCALATE, "Escalate")]

# Feature types as rules see them, and the operators the router can compare each with.
NUMBER, INTEGER, TEXT, BOOLEAN, ANY, UNCOMPARABLE = "number", "integer", "text", "true/false", "any", "uncomparable"
OPERATORS_BY_KIND = {
    NUMBER: OPERATORS,
    INTEGER: OPERATORS,
    TEXT: OPERATORS,
    BOOLEAN: ("==", "!="),
    ANY: OPERATORS,
    UNCOMPARABLE: (),
}
SCHEMA_TYPE_KINDS = {"number": NUMBER, "integer": INTEGER, "string": TEXT, "boolean": BOOLEAN}


def _kind_of_values(values: list) -> str:
    if values and all(isinstance(value, bool) for value in values):
        return BOOLEAN
    if values and all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return INTEGER
    if values and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return NUMBER
    if values and all(isinstance(value, str) for value in values):
        return TEXT
    return ANY


def feature_kind(subschema: Any) -> str:
    """How a rule compares a feature, from its JSON Schema: its type, else the type of its enum or const."""
    if not isinstance(subschema, Mapping):
        return ANY
    declared = subschema.get("type")
    types = [declared] if isinstance(declared, str) else declared if isinstance(declared, list) else []
    types = [kind for kind in types if kind != "null"]
    if not types:
        if "const" in subschema:
            return _kind_of_values([subschema["const"]])
        choices = subschema.get("enum")
        if not isinstance(choices, list):
            return ANY
        return _kind_of_values([choice for choice in choices if choice is not None])
    if set(types) <= {"number", "integer"}:
        return INTEGER if types == ["integer"] else NUMBER
    if len(types) == 1 and types[0] in SCHEMA_TYPE_KINDS:
        return SCHEMA_TYPE_KINDS[types[0]]
    if set(types) & {"object", "array"} and len(types) == 1:
        return UNCOMPARABLE
    return ANY


def feature_kinds(model: MLModel) -> dict[str, str]:
    """The model's features (the properties of its feature schema) and how a rule compares each.

    In the schema's declared order (``x-feature-order``), else alphabetical: PostgreSQL's jsonb does not keep the
    order the properties were written in, so every database lists them alike.
    """
    schema = model.feature_schema or {}
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    declared = schema.get(FEATURE_ORDER_KEYWORD)
    names = declared if isinstance(declared, list) and set(declared) == set(properties) else sorted(properties)
    return {str(name): feature_kind(properties[name]) for name in names}


def _not_one_of(model: MLModel, what: str, given: str, known) -> str:
    return f"Not a {what} of {model.name}: {given}. Its {what}s: {', '.join(known) or 'none declared'}."


def _stored(policy: RoutingPolicy, name: str) -> Any:
    # A policy row written before the defaults may hold null: it means no rules, no thresholds.
    return getattr(policy, name) or ([] if name == "rules" else {})


def _scalar(text: str, kind: str, field: str) -> Any:
    text = text.strip()
    if not text:
        raise ValidationError("Enter a value.")
    if kind == TEXT:
        return text
    if kind == BOOLEAN:
        if text.lower() not in ("true", "false"):
            raise ValidationError(f"{field} is true or false: enter true or false.")
        return text.lower() == "true"
    try:
        number: int | float = int(text)
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            if kind == ANY:
                return {"true": True, "false": False}.get(text.lower(), text)
            raise ValidationError(f"{field} is a number: enter a number such as 10000 or 0.5.") from None
    if not math.isfinite(number):
        raise ValidationError("Enter a finite number: NaN and infinity match nothing useful.")
    if kind == INTEGER and not isinstance(number, int):
        raise ValidationError(f"{field} is a whole number: enter a whole number.")
    return number


def rule_value(text: str, *, kind: str, operator: str, field: str) -> Any:
    """The value a rule compares with, of the feature's type, from what was typed (a comma-separated list for
    'in')."""
    if operator != "in":
        return _scalar(text, kind, field)
    items = [item for item in text.split(",")]
    if not any(item.strip() for item in items):
        raise ValidationError("Enter one or more values, separated by commas.")
    if not all(item.strip() for item in items):
        raise ValidationError("An empty item between commas: enter one or more values, separated by commas.")
    return [_scalar(item, kind, field) for item in items]


def _typed_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_typed_text(item) for item in value)
    return "" if value is None else str(value)


def rule_row_initial(raw: Any) -> dict[str, Any]:
    """A stored rule as a row shows it; a stored rule that is not an object shows as an empty row to fix."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        "field": raw.get("field", ""),
        "operator": raw.get("operator", ""),
        "value": _typed_text(raw.get("value")),
        "action": raw.get("action", ""),
        "reason": raw.get("reason", ""),
    }


class RuleRowForm(forms.Form):
    """One business rule: ``<feature> <operator> <value>`` sends a case to review or to an adjudicator."""

    field = forms.ChoiceField(label="Feature")
    operator = forms.ChoiceField(label="Operator", choices=OPERATOR_CHOICES)
    value = forms.CharField(
        label="Value",
        max_length=MAX_RULE_TEXT_LENGTH,
        strip=True,
        widget=forms.TextInput(attrs={"size": 12}),
    )
    action = forms.ChoiceField(label="Action", choices=ACTION_CHOICES)
    reason = forms.CharField(
        label="Reason",
        max_length=MAX_RULE_TEXT_LENGTH,
        strip=True,
        widget=forms.TextInput(attrs={"size": 24}),
        error_messages={"required": "Give the rule a reason: reviewers and compliance officers read it."},
    )

    def __init__(self, *args, model: MLModel, kinds: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.model = model
        self.kinds = kinds
        for name in ("field", "operator", "value", "action", "reason"):
            self.fields[name].widget.attrs["aria-label"] = self.fields[name].label
        if not kinds:
            # No feature schema: the features are whatever callers send, so the name is typed.
            self.fields["field"] = forms.CharField(label="Feature", max_length=200, strip=True)
            self.fields["field"].widget.attrs["aria-label"] = "Feature"
            return
        stored = (self.initial or {}).get("field")
        # A stored rule naming a feature the schema no longer has stays visible, to be corrected or removed.
        unknown = [(stored, f"{stored} (not a feature of {model.name})")] if stored and stored not in kinds else []
        feature = self.fields["field"]
        assert isinstance(feature, forms.ChoiceField)  # as declared: only a model without a schema types the name
        feature.choices = [("", "---------"), *((name, name) for name in kinds), *unknown]
        feature.error_messages["invalid_choice"] = _not_one_of(model, "feature", "%(value)s", kinds)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        field, operator = data.get("field"), data.get("operator")
        if not field:
            return data
        kind = self.kinds.get(field, ANY if not self.kinds else None)
        if kind is None:
            self.add_error("field", _not_one_of(self.model, "feature", field, self.kinds))
            return data
        if operator and operator not in OPERATORS_BY_KIND[kind]:
            allowed = " ".join(OPERATORS_BY_KIND[kind])
            self.add_error(
                "operator",
                f"{field} is a list or an object: rules compare numbers, text and true/false only."
                if not allowed
                else f"'{operator}' does not apply to {field} ({kind}): use one of {allowed}.",
            )
            return data
        if operator and "value" in data:
            try:
                data["typed_value"] = rule_value(data["value"], kind=kind, operator=operator, field=field)
            except ValidationError as exc:
                self.add_error("value", exc)
                return data
        if not self.errors:
            try:
                Rule.from_dict(self.rule(data))
            except RuleError as exc:
                raise ValidationError(str(exc)) from None
        return data

    @staticmethod
    def rule(data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "field": data["field"],
            "operator": data["operator"],
            "value": data["typed_value"],
            "action": data["action"],
            "reason": data["reason"],
        }


class LabelThresholdRowForm(forms.Form):
    """One label's own auto-decide threshold, overriding the policy's for cases the model gives that label."""

    label = forms.ChoiceField(label="Label")
    threshold = forms.FloatField(
        label="Threshold (0-1)",
        min_value=0,
        max_value=1,
        widget=forms.NumberInput(attrs={"step": "any"}),
        error_messages={
            "min_value": "Enter a number between 0 and 1.",
            "max_value": "Enter a number between 0 and 1.",
            "invalid": "Enter a number between 0 and 1.",
        },
    )

    def __init__(self, *args, model: MLModel, **kwargs):
        super().__init__(*args, **kwargs)
        labels = [str(label) for label in model.labels or []]
        stored = (self.initial or {}).get("label")
        unknown = [(stored, f"{stored} (not a label of {model.name})")] if stored and stored not in labels else []
        label_field = self.fields["label"]
        assert isinstance(label_field, forms.ChoiceField)  # as declared
        label_field.choices = [("", "---------"), *((label, label) for label in labels), *unknown]
        label_field.error_messages["invalid_choice"] = _not_one_of(model, "label", "%(value)s", labels)
        label_field.widget.attrs["aria-label"] = "Label"
        self.fields["threshold"].widget.attrs["aria-label"] = "Threshold"
        self.model = model
        self.model_labels = labels

    def clean_label(self) -> str:
        label = self.cleaned_data["label"]
        if label not in self.model_labels:
            raise ValidationError(_not_one_of(self.model, "label", label, self.model_labels))
        return label


class _RowFormSet(forms.BaseFormSet):
    def add_fields(self, form, index) -> None:
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].label = "Remove"
            form.fields["DELETE"].widget.attrs["aria-label"] = "Remove this row"

    def kept_rows(self) -> list[forms.Form]:
        """The filled rows that are not marked for removal, in page order."""
        filled = [form for form in self.forms if form in self.initial_forms or form.has_changed()]
        # Marked for removal: the formset's own test (BaseFormSet._should_delete_form reads the same field).
        return [form for form in filled if not form.cleaned_data.get(DELETION_FIELD_NAME, False)]


class RuleRowFormSet(_RowFormSet):
    def rules(self) -> list[dict[str, Any]]:
        return [RuleRowForm.rule(form.cleaned_data) for form in self.kept_rows()]


class LabelThresholdRowFormSet(_RowFormSet):
    def clean(self) -> None:
        seen: set[str | None] = set()
        for form in self.kept_rows():
            label = form.cleaned_data.get("label")
            if label in seen:
                form.add_error("label", f"{label} already has a threshold above: keep one row per label.")
            seen.add(label)

    def label_thresholds(self) -> dict[str, float]:
        return {form.cleaned_data["label"]: form.cleaned_data["threshold"] for form in self.kept_rows()}


RuleRows = forms.formset_factory(
    RuleRowForm, formset=RuleRowFormSet, extra=EMPTY_ROWS, can_delete=True, max_num=MAX_ROWS, validate_max=True
)
LabelThresholdRows = forms.formset_factory(
    LabelThresholdRowForm,
    formset=LabelThresholdRowFormSet,
    extra=EMPTY_ROWS,
    can_delete=True,
    max_num=MAX_ROWS,
    validate_max=True,
)


class RoutingPolicyForm(forms.ModelForm):
    """A policy's settings, rules and label thresholds, checked by the service's own validators, plus a reason."""

    editable_names = tuple(EDITABLE_FIELDS)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="Why this change: recorded with the policy's history and in the ledger.",
    )

    class Meta:
        model = RoutingPolicy
        fields = SETTING_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        model = self.instance.model
        data = self.data if self.is_bound else None
        self.rule_rows = RuleRows(
            data,
            prefix="rules",
            initial=[rule_row_initial(raw) for raw in self.instance.rules or []],
            form_kwargs={"model": model, "kinds": feature_kinds(model)},
        )
        self.label_threshold_rows = LabelThresholdRows(
            data,
            prefix="thresholds",
            initial=[
                {"label": label, "threshold": threshold}
                for label, threshold in (self.instance.label_thresholds or {}).items()
            ],
            form_kwargs={"model": model},
        )

    def _row_settings(self) -> dict[str, Any]:
        """The rows' settings that differ from the stored ones (call once both formsets are valid)."""
        typed = {"rules": self.rule_rows.rules(), "label_thresholds": self.label_threshold_rows.label_thresholds()}
        return {name: value for name, value in typed.items() if value != _stored(self.instance, name)}

    @cached_property
    def changed_data(self) -> list[str]:
        changed = super().changed_data
        if self.is_bound and self.rule_rows.is_valid() and self.label_threshold_rows.is_valid():
            changed.extend(self._row_settings())
        return changed

    def clean(self):
        data = super().clean()
        if not (self.rule_rows.is_valid() and self.label_threshold_rows.is_valid()):
            raise ValidationError("Correct the rules or label thresholds marked below: nothing was saved.")
        data.update(self._row_settings())
        for name in self.changed_data:
            if name in EDITABLE_FIELDS and name in data:
                try:
                    data[name] = EDITABLE_FIELDS[name](data[name], self.instance.model)
                except ValidationError as exc:
                    self.add_error(name if name in self.fields else None, exc)
        return data

    def _post_clean(self) -> None:
        # The service writes the policy: the instance stays as stored (what the service locks and diffs),
        # so the ModelForm's copying of values onto it and its model validation are skipped.
        pass
