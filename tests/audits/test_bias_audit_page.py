"""A bias audit's console page as a compliance officer files it: the verdict first, what was audited, the figures
and charts per scope, review's effect, a CSV to keep, a new-audit form, and "Run again" for an audit that could
not run."""

import csv
import io
import re
from datetime import date

import pytest
from django.test import TestCase
from django.urls import reverse

from audits.choices import AuditPopulation, AuditStatus
from audits.models import BiasAudit, DecisionEvent
from audits.services.bias_audits import bias_audit_request
from hitl_platform.roles import Role
from models_registry.choices import Stage
from reviews.choices import DecisionSource
from tests.audits.bias_data import Cohort, cases_make
from tests.audits.factories import BiasAuditFactory
from tests.factories import UserFactory
from tests.models_registry.factories import MLModelFactory, ModelVersionFactory
from tests.platform.test_csp import csp_directives, refused_markup
from tests.reviews.factories import ReviewFactory, ReviewTaskFactory


@pytest.fixture
def version(db):
    owner = UserFactory(username="owen_owner", roles=[Role.ML_ENGINEER])
    return ModelVersionFactory(stage=Stage.PRODUCTION, model__owner=owner, model__name="credit", created_by=owner)


@pytest.fixture
def officer_client(client, compliance_officer):
    client.force_login(compliance_officer)
    return client


def audited(actor, version, cohorts, population=AuditPopulation.MODEL, attributes=("sex",)) -> BiasAudit:
    """Make the cases, request an audit and let the eager worker run it once the request commits."""
    cases_make(version, cohorts)
    with TestCase.captureOnCommitCallbacks(execute=True):
        requested = bias_audit_request(
            actor=actor,
            model=version.model,
            population=population,
            sensitive_attributes=list(attributes),
        )
    return BiasAudit.objects.get(pk=requested.pk)


UNEQUAL = [
    Cohort("female", "<35", 40, model_approved=20, outcome="approve"),
    Cohort("male", "<35", 40, model_approved=32, outcome="approve"),
    Cohort("other", "<35", 6, model_approved=3),
]


def page_of(client, audit) -> str:
    response = client.get(reverse("admin:audits_biasaudit_change", args=[audit.pk]))
    assert response.status_code == 200
    assert refused_markup(response.content.decode(), csp_directives(response["Content-Security-Policy"])) == []
    return response.content.decode()


def svg(html: str, element_id: str) -> str:
    found = re.search(rf'<svg[^>]* id="{re.escape(element_id)}".*?</svg>', html, re.S)
    assert found, f"no SVG {element_id}"
    return found.group(0)


def csv_rows(client, audit) -> list[dict]:
    response = client.get(reverse("admin:bias_audit_csv", args=[audit.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="bias-audit-{audit.pk}-credit.csv"' in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


class TestReport:
    def test_the_verdict_comes_first_then_what_was_audited_and_its_ledger_event(
        self, officer_client, compliance_officer, version
    ):
        audit = audited(compliance_officer, version, UNEQUAL)

        html = page_of(officer_client, audit)

        verdict = re.search(r'<p class="hitl-verdict ([^"]+)" id="audit-verdict">([^<]+)</p>', html)
        assert verdict.groups() == ("verdict-failed", "Failed")
        assert html.index('id="audit-verdict"') < html.index('id="audited"') < html.index('id="scope-1"')
        assert "The audit failed: 2 of 2 judged checks failed." in html
        assert "the four-fifths rule requires at least 80%, so this fails" in html
        event = DecisionEvent.objects.get(event_type="audit.finished", object_id=str(audit.pk))
        ledger = reverse("admin:audits_decisionevent_change", args=[event.pk])
        assert f'<a href="{ledger}">#{event.pk} audit.finished' in html
        assert f"<code>{audit.inputs_sha256}</code>" in html
        assert "86 cases, 80 of them with a known outcome" in html
        assert "Every version" in html and "The model&#x27;s labels" in html
        assert "demographic parity ratio at least 80 % (the four-fifths rule)" in html
        assert "equalized odds difference at most 0.10" in html
        assert "6 cases; smaller groups are shown but too small to judge" not in html  # the policy's 30
        assert "30 cases; smaller groups are shown but too small to judge" in html
        assert compliance_officer.username in html

    def test_each_group_gets_a_bar_the_four_fifths_line_and_the_small_group_is_hatched(
        self, officer_client, compliance_officer, version
    ):
        audit = audited(compliance_officer, version, UNEQUAL)

        html = page_of(officer_client, audit)

        bars = svg(html, f"audit-{audit.pk}-scope-0-selection_rate")
        assert len(re.findall(r'<rect class="bar bar-judged"', bars)) == 2
        hatched = re.findall(r'<rect class="bar bar-small"[^>]*fill="url\(#([^)]+)\)"', bars)
        assert hatched == [f"audit-{audit.pk}-scope-0-selection_rate-hatch"]
        assert "50 % · 6 cases, too small to judge" in bars
        # Four-fifths of the highest judged rate (men: 80 %) is 64 %: the line is drawn there and says so.
        assert '<line class="threshold"' in bars
        assert "four-fifths of the highest rate (80 %): 64 %" in bars
        for metric in ("true_positive_rate", "false_positive_rate", "accuracy"):
            svg(html, f"audit-{audit.pk}-scope-0-{metric}")

    def test_the_between_group_figures_carry_their_interval_as_a_whisker_against_the_threshold(
        self, officer_client, compliance_officer, version
    ):
        audit = audited(compliance_officer, version, UNEQUAL)

        html = page_of(officer_client, audit)

        row = re.search(r'<tbody class="verdict-failed" data-metric="demographic_parity_ratio">.*?</tbody>', html, re.S)
        assert row, "the failed ratio's row"
        assert "62.5 %" in row.group(0) and "at least 80 % (the four-fifths rule)" in row.group(0)
        low, _high = BiasAudit.objects.get(pk=audit.pk).result["scopes"][0]["between_groups"][1]["interval"]
        assert f"{low * 100:.1f}".removesuffix(".0") + " %" in row.group(0)
        figure = svg(html, f"audit-{audit.pk}-scope-0-demographic_parity_ratio-figure")
        assert '<g class="whisker">' in figure
        assert '<line class="threshold"' in figure and '<rect class="fail-zone"' in figure
        assert '<circle class="dot verdict-failed"' in figure

    def test_an_amplification_audit_shows_rates_before_and_after_and_each_reviewers_overrides(
        self, officer_client, compliance_officer, version
    ):
        rita = UserFactory(username="rita")
        predictions = cases_make(
            version,
            [
                Cohort("female", "<35", 40, model_approved=20, final_approved=28, source=DecisionSource.CONSENSUS),
                Cohort("male", "<35", 40, model_approved=32, final_approved=32, source=DecisionSource.CONSENSUS),
            ],
        )
        for index, prediction in enumerate(predictions[:40]):
            ReviewFactory(
                assignment__task=ReviewTaskFactory(prediction=prediction),
                assignment__reviewer=rita,
                label="approve" if index < 28 else "deny",
            )
        with TestCase.captureOnCommitCallbacks(execute=True):
            requested = bias_audit_request(
                actor=compliance_officer,
                model=version.model,
                population=AuditPopulation.AMPLIFICATION,
                sensitive_attributes=["sex"],
            )

        html = page_of(officer_client, requested)

        assert re.search(r'id="audit-verdict">Passed<', html)
        assert "Review narrowed the gap" in html
        assert "62.5 % before review, 87.5 % after" in html
        assert '<td>sex = female</td><td class="num">40</td><td class="num">50 %</td><td class="num">70 %</td>' in html
        assert svg(html, f"audit-{requested.pk}-amplification-0").count('class="bar bar-after"') == 3  # legend + 2
        overrides = re.search(r'<table class="hitl-table" id="overrides">.*?</table>', html, re.S).group(0)
        assert "<td>rita</td><td>sex</td><td>sex = female</td>" in overrides
        assert "8 of 20 (40 %)" in overrides and "towards approve" in overrides

    def test_a_reviewers_audit_shows_each_reviewer_on_their_own(self, officer_client, compliance_officer, version):
        rita, ravi = UserFactory(username="rita"), UserFactory(username="ravi")
        predictions = cases_make(
            version,
            [
                Cohort("female", "<35", 30, model_approved=30, source=DecisionSource.CONSENSUS),
                Cohort("male", "<35", 30, model_approved=30, source=DecisionSource.CONSENSUS),
            ],
        )
        for prediction in predictions:
            task = ReviewTaskFactory(prediction=prediction)
            female = prediction.sensitive_attributes["sex"] == "female"
            ReviewFactory(assignment__task=task, assignment__reviewer=rita, label="deny" if female else "approve")
            ReviewFactory(assignment__task=task, assignment__reviewer=ravi, label="approve")
        with TestCase.captureOnCommitCallbacks(execute=True):
            requested = bias_audit_request(
                actor=compliance_officer,
                model=version.model,
                population=AuditPopulation.REVIEWERS,
                sensitive_attributes=["sex"],
            )

        html = page_of(officer_client, requested)

        table = re.search(r'<div class="module" id="by-reviewer">.*?</table>', html, re.S).group(0)
        assert re.search(r"<td>ravi</td><td><span class=\"hitl-verdict-tag verdict-passed\">passed", table)
        assert re.search(r"<td>rita</td><td><span class=\"hitl-verdict-tag verdict-failed\">failed", table)
        assert "sex = female: 0 % of 30; sex = male: 100 % of 30" in table

    def test_a_queued_audit_refreshes_itself_and_shows_its_progress(self, officer_client, version):
        queued = BiasAuditFactory(
            version=version, status=AuditStatus.RUNNING, verdict="", passed=None, progress=40, finished_at=None
        )

        html = page_of(officer_client, queued)

        assert '<meta http-equiv="refresh" content="3">' in html
        assert 'id="audit-verdict">Running: 40 % done<' in html
        assert '<progress max="100" value="40"' in html
        assert "Download CSV" not in html
        finished = page_of(officer_client, BiasAuditFactory(version=version))
        assert 'http-equiv="refresh"' not in finished

    def test_another_teams_audit_is_not_shown_to_a_staff_member_who_may_not_read_the_model(self, client, version):
        outsider = UserFactory(username="sam_staff", roles=[Role.ML_ENGINEER])
        outsider.is_staff = True
        outsider.save(update_fields=["is_staff"])
        client.force_login(outsider)
        audit = BiasAuditFactory(version=version)

        page = client.get(reverse("admin:audits_biasaudit_change", args=[audit.pk]))
        download = client.get(reverse("admin:bias_audit_csv", args=[audit.pk]))

        assert page.status_code == 302 and download.status_code == 404
        assert client.get(reverse("admin:audits_biasaudit_changelist")).context["cl"].result_count == 0


class TestCsv:
    def test_one_row_per_scope_group_and_metric_and_one_per_between_group_figure(
        self, officer_client, compliance_officer, version
    ):
        audit = audited(compliance_officer, version, UNEQUAL, attributes=("sex", "age_band"))

        rows = csv_rows(officer_client, audit)

        scopes = {row["scope"] for row in rows}
        assert scopes == {"sex", "age_band", "sex & age_band"}
        female = next(r for r in rows if r["group"] == "sex = female" and r["metric"] == "selection_rate")
        assert (female["section"], float(female["value"]), female["cases"], female["too_small_to_judge"]) == (
            "group",
            0.5,
            "40",
            "False",
        )
        ratio = next(r for r in rows if r["scope"] == "sex" and r["metric"] == "demographic_parity_ratio")
        assert (ratio["section"], float(ratio["value"]), ratio["threshold"], ratio["verdict"]) == (
            "between groups",
            0.625,
            "0.8",
            "failed",
        )
        assert float(ratio["interval_low"]) < 0.625 < float(ratio["interval_high"])
        assert ratio["group"] == "sex = female vs sex = male" and "four-fifths" in ratio["summary"]
        # 3 scopes: sex (3 groups), age_band (1), sex & age_band (3); 6 metrics per group, 6 between-group figures.
        assert len(rows) == (3 + 1 + 3) * 6 + 3 * 6

    def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_neutralised(
        self, officer_client, compliance_officer, version
    ):
        hostile = UserFactory(username="-2+3")
        predictions = cases_make(
            version,
            [
                Cohort("female", "<35", 30, model_approved=15, final_approved=20, source=DecisionSource.CONSENSUS),
                Cohort("male", "<35", 30, model_approved=20, final_approved=20, source=DecisionSource.CONSENSUS),
            ],
        )
        for prediction in predictions[:5]:
            ReviewFactory(
                assignment__task=ReviewTaskFactory(prediction=prediction), assignment__reviewer=hostile, label="deny"
            )
        with TestCase.captureOnCommitCallbacks(execute=True):
            requested = bias_audit_request(
                actor=compliance_officer,
                model=version.model,
                population=AuditPopulation.AMPLIFICATION,
                sensitive_attributes=["sex"],
            )

        rows = csv_rows(officer_client, requested)

        overrides = [row for row in rows if row["section"] == "reviewer overrides"]
        assert overrides and {row["reviewer"] for row in overrides} == {"'-2+3"}
        after = next(r for r in rows if r["metric"] == "demographic_parity_ratio_after")
        assert (after["threshold"], after["verdict"]) == ("0.8", "narrowed")
        # Negative numbers stay numbers: only text can smuggle a formula.
        net = next(r for r in overrides if r["metric"] == "net_selection_change" and r["group"] == "sex = female")
        assert net["value"] == "-1.0"

    def test_an_unfinished_audit_has_no_csv(self, officer_client, version):
        queued = BiasAuditFactory(version=version, status=AuditStatus.QUEUED, verdict="", finished_at=None)

        assert officer_client.get(reverse("admin:bias_audit_csv", args=[queued.pk])).status_code == 404


class TestNewAudit:
    def url(self) -> str:
        return reverse("admin:bias_audit_new")

    def test_the_page_carries_nothing_the_policy_refuses(self, officer_client, version):
        response = officer_client.get(self.url(), {"model": version.model.pk})

        assert refused_markup(response.content.decode(), csp_directives(response["Content-Security-Policy"])) == []
        assert response.context["form"].fields["sensitive_attributes"].choices == [
            ("sex", "sex"),
            ("age_band", "age_band"),
        ]

    def test_adding_an_audit_opens_the_new_audit_page(self, officer_client):
        response = officer_client.get(reverse("admin:audits_biasaudit_add"))

        assert response.status_code == 302 and response["Location"] == self.url()

    def test_a_valid_request_queues_the_audit_and_opens_its_page(self, officer_client, compliance_officer, version):
        with TestCase.captureOnCommitCallbacks() as queued:
            response = officer_client.post(
                self.url(),
                {
                    "model": version.model.pk,
                    "population": "decisions",
                    "sensitive_attributes": ["sex", "age_band"],
                    "version": str(version.number),
                    "since": "2025-01-01",
                    "until": "2025-01-31",
                },
            )

        audit = BiasAudit.objects.get()
        assert response.status_code == 302
        assert response["Location"] == reverse("admin:audits_biasaudit_change", args=[audit.pk])
        assert (audit.status, audit.population, audit.sensitive_attributes, audit.version) == (
            "queued",
            "decisions",
            ["sex", "age_band"],
            version,
        )
        assert (audit.since.date(), audit.until.date()) == (date(2025, 1, 1), date(2025, 2, 1))
        assert audit.requested_by == compliance_officer and len(queued) == 1
        assert audit.history.get().history_change_reason == "Audit requested (on demand)"

    @pytest.mark.parametrize(
        ("changes", "field", "message"),
        [
            ({"model": ""}, "model", "This field is required."),
            ({"sensitive_attributes": ["religion"]}, "sensitive_attributes", "religion is not one of the available"),
            ({"population": "everyone"}, "population", "everyone is not one of the available choices"),
            ({"version": "99"}, "version", "credit has no version 99."),
            ({"since": "2025-02-01", "until": "2025-01-01"}, "until", "The last day cannot come before the first."),
            ({"since": "1 February"}, "since", "Enter a valid date."),
        ],
    )
    def test_bad_input_is_a_form_error_and_queues_nothing(self, officer_client, version, changes, field, message):
        data = {"model": version.model.pk, "population": "model", "sensitive_attributes": ["sex"]} | changes

        response = officer_client.post(self.url(), data)

        assert response.status_code == 200
        assert any(message in error for error in response.context["form"].errors[field])
        assert not BiasAudit.objects.exists()

    def test_a_model_without_sensitive_attributes_is_refused_in_words(self, officer_client):
        bare = MLModelFactory(name="plain", sensitive_attributes=[])

        response = officer_client.post(self.url(), {"model": bare.pk, "population": "model"})

        assert "plain declares no sensitive attributes" in response.context["form"].errors["model"][0]

    def test_the_form_offers_only_the_models_the_user_may_audit(self, client, version):
        engineer = UserFactory(username="sam_staff", roles=[Role.ML_ENGINEER])
        engineer.is_staff = True
        engineer.save(update_fields=["is_staff"])
        own = MLModelFactory(name="fraud", owner=engineer, sensitive_attributes=["region"])
        client.force_login(engineer)

        offered = client.get(self.url()).context["form"].fields["model"].queryset
        refused = client.post(
            self.url(), {"model": version.model.pk, "population": "model", "sensitive_attributes": ["sex"]}
        )

        assert list(offered) == [own]
        assert "Select a valid choice" in refused.context["form"].errors["model"][0]
        assert not BiasAudit.objects.exists()

    def test_the_attributes_offered_are_the_chosen_models_and_audit_again_fills_the_form(self, officer_client, version):
        audit = BiasAuditFactory(version=version, sensitive_attributes=["age_band"], population="decisions")
        html = page_of(officer_client, audit)
        again = re.search(r'<a href="([^"]+)">Audit again</a>', html).group(1).replace("&amp;", "&")

        form = officer_client.get(again).context["form"]

        assert form.fields["sensitive_attributes"].choices == [("sex", "sex"), ("age_band", "age_band")]
        assert (form.initial["model"], form.initial["population"], form.initial["sensitive_attributes"]) == (
            str(version.model.pk),
            "decisions",
            ["age_band"],
        )
        assert form.initial["version"] == str(version.number)


class TestRunAgain:
    def test_an_audit_that_could_not_run_is_queued_again_from_its_page(
        self, officer_client, compliance_officer, version
    ):
        broken = BiasAuditFactory(
            version=version, status=AuditStatus.FAILED, verdict="", passed=None, error="Worker lost.", finished_at=None
        )
        html = page_of(officer_client, broken)
        assert 'id="audit-verdict">Could not run<' in html and "Worker lost." in html
        assert f'action="{reverse("admin:bias_audit_run_again", args=[broken.pk])}"' in html

        with TestCase.captureOnCommitCallbacks() as queued:
            response = officer_client.post(reverse("admin:bias_audit_run_again", args=[broken.pk]))

        broken.refresh_from_db()
        assert response.status_code == 302 and (broken.status, broken.error) == ("queued", "")
        assert len(queued) == 1
        assert broken.history.first().history_change_reason == "Retry requested"

    def test_a_finished_audit_is_not_run_again_and_the_page_says_why(self, officer_client, version):
        finished = BiasAuditFactory(version=version)
        assert "Run again" not in page_of(officer_client, finished)

        response = officer_client.post(reverse("admin:bias_audit_run_again", args=[finished.pk]), follow=True)

        finished.refresh_from_db()
        assert finished.status == "succeeded"
        assert "Only a failed audit can be retried" in response.content.decode()

    def test_the_changelist_action_queues_the_selected_failed_audits(self, officer_client, version):
        broken = BiasAuditFactory(version=version, status=AuditStatus.FAILED, verdict="", passed=None)
        finished = BiasAuditFactory(version=version)

        with TestCase.captureOnCommitCallbacks():
            officer_client.post(
                reverse("admin:audits_biasaudit_changelist"),
                {"action": "run_again", "_selected_action": [broken.pk, finished.pk]},
            )

        assert BiasAudit.objects.get(pk=broken.pk).status == "queued"
        assert BiasAudit.objects.get(pk=finished.pk).status == "succeeded"


def test_the_models_page_lists_its_latest_audits_with_their_verdicts(officer_client, version):
    audits = [BiasAuditFactory(version=version) for _ in range(11)]
    failed = BiasAuditFactory(version=version, verdict="failed", passed=False)

    response = officer_client.get(reverse("admin:models_registry_mlmodel_change", args=[version.model.pk]))

    html = response.content.decode()
    assert refused_markup(html, csp_directives(response["Content-Security-Policy"])) == []
    block = re.search(r'<div class="module hitl-model-audits" id="model-bias-audits">.*?</div>', html, re.S).group(0)
    links = re.findall(r'href="/admin/audits/biasaudit/(\d+)/change/"', block)
    assert links[0] == str(failed.pk) and len(links) == 10 and str(audits[0].pk) not in links
    assert '<span class="hitl-verdict-tag verdict-failed">Failed</span>' in block
    assert f"{reverse('admin:bias_audit_new')}?model={version.model.pk}" in block
