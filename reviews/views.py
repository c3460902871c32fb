"""The reviewer pages: my queue, next case, the review form, my cases, skip, correction, adjudication, appeals.

Views are thin: they check the role, read through `reviews.selectors.queue` (which decides what a reviewer
may see) and write through the services. A reviewer reaches only their own assignments: anybody else's is a
404, never a 403 that would confirm it exists. People without the reviewer role get a 403.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from hitl_platform.types import authenticated_user
from reviews.choices import CLAIMABLE_TASK_STATUSES, AssignmentStatus, TaskStatus
from reviews.exceptions import ReviewWorkflowError
from reviews.forms import (
    AdjudicationForm,
    AppealForm,
    AppealSearchForm,
    CorrectionForm,
    MyCasesCursorForm,
    ReviewForm,
    SkipForm,
)
from reviews.models import Assignment, Decision, Review, ReviewTask
from reviews.selectors.appeals import AppealCaseNotFound, appeal_case, appeal_case_search
from reviews.selectors.my_cases import reviewer_cases
from reviews.selectors.queue import (
    adjudication_case,
    assignment_for_reviewer,
    case_view,
    escalated_tasks,
    own_review_of,
    review_for_correction,
    reviewer_queue_overview,
)
from reviews.services.appeals import decision_reverse_on_appeal
from reviews.services.assignments import assignment_claim_next, assignment_release
from reviews.services.reviewing import (
    fast_review_warning,
    review_correct,
    review_submit,
    seconds_since_claim,
    task_adjudicate,
)

REVIEW_PERMISSION = "reviews.review_cases"
ADJUDICATE_PERMISSION = "reviews.adjudicate_cases"


def reviewer_required(view):
    return login_required(permission_required(REVIEW_PERMISSION, raise_exception=True)(view))


def adjudicator_required(view):
    return login_required(permission_required(ADJUDICATE_PERMISSION, raise_exception=True)(view))


def _own_assignment(request: HttpRequest, pk: int) -> Assignment:
    try:
        return assignment_for_reviewer(assignment_id=pk, reviewer=request.user)
    except Assignment.DoesNotExist as missing:
        raise Http404("No such assignment of yours.") from missing


@reviewer_required
def queue(request: HttpRequest) -> HttpResponse:
    overview = reviewer_queue_overview(
        reviewer=request.user, now=timezone.now(), is_adjudicator=request.user.has_perm(ADJUDICATE_PERMISSION)
    )
    return render(request, "reviews/queue.html", {"overview": overview, "now": timezone.now()})


@reviewer_required
def next_task(request: HttpRequest) -> HttpResponse:
    """POST claims the next case (or returns the one already held) and opens its form."""
    if request.method != "POST":
        return redirect("reviews:queue")
    assignment = assignment_claim_next(reviewer=authenticated_user(request))
    if assignment is None:
        messages.info(request, "No case is waiting for you right now. Check back soon.")
        return redirect("reviews:queue")
    return redirect("reviews:review", pk=assignment.pk)


def _lease_notice(assignment: Assignment) -> str:
    now = timezone.now()
    if assignment.status == AssignmentStatus.RELEASED:
        return "You handed this case back. You may still submit while its review slot is free."
    lease_over = assignment.lease_expires_at is not None and assignment.lease_expires_at < now
    if assignment.status == AssignmentStatus.EXPIRED or lease_over:
        ended = timezone.localtime(assignment.lease_expires_at).strftime("%H:%M")
        return (
            f"Your time on this case ran out at {ended}. You may still submit: your review is accepted "
            "while the case's review slot is free, and nothing you typed is lost if it is not."
        )
    return ""


@reviewer_required
def review(request: HttpRequest, pk: int) -> HttpResponse:
    """The review form of one of the reviewer's own assignments; POST submits it."""
    assignment = _own_assignment(request, pk)
    task = assignment.task
    labels = list(task.model.labels)
    case = case_view(task, reveal_model=False)
    if assignment.status == AssignmentStatus.SUBMITTED and request.method != "POST":
        own = own_review_of(assignment)
        context = {
            "assignment": assignment,
            "case": case,
            "own": own,
            "can_correct": task.status in CLAIMABLE_TASK_STATUSES,
        }
        return render(request, "reviews/submitted.html", context)

    form = ReviewForm(request.POST or None, labels=labels)
    if request.method == "POST" and form.is_valid():
        # A repeated submit of a recorded review goes straight to the service, which answers that it is recorded.
        first_submit = assignment.status != AssignmentStatus.SUBMITTED
        fast_warning = fast_review_warning(assignment, feature_count=len(case.features), now=timezone.now())
        if first_submit and fast_warning and not form.cleaned_data["confirm_fast"]:
            form.add_error("confirm_fast", fast_warning)
        else:
            try:
                result = review_submit(
                    assignment_id=assignment.pk,
                    reviewer=authenticated_user(request),
                    label=form.cleaned_data["label"],
                    rationale=form.cleaned_data["rationale"],
                )
            except ReviewWorkflowError as problem:
                form.add_error(None, str(problem))
            else:
                if not result.created:
                    messages.info(request, "This review was already recorded; nothing was submitted twice.")
                elif result.late:
                    messages.success(request, "Review recorded. Your time had run out, but the slot was still free.")
                else:
                    messages.success(request, "Review recorded. Thank you.")
                return redirect("reviews:review", pk=assignment.pk)

    context = {
        "assignment": assignment,
        "case": case,
        "form": form,
        "skip_form": SkipForm(),
        "lease_notice": _lease_notice(assignment),
        "elapsed": seconds_since_claim(assignment, now=timezone.now()),
    }
    return render(request, "reviews/review.html", context, status=409 if form.non_field_errors() else 200)


@reviewer_required
@require_http_methods(["GET"])
def my_cases(request: HttpRequest) -> HttpResponse:
    """The cases this reviewer reviewed, newest first, with where each stands and, once decided, its final label."""
    cursor = MyCasesCursorForm(request.GET)
    if not cursor.is_valid():
        return render(request, "reviews/my_cases.html", {"cursor_form": cursor, "page": None}, status=400)
    page = reviewer_cases(reviewer=request.user, before=cursor.cleaned_data["before"])
    return render(request, "reviews/my_cases.html", {"cursor_form": cursor, "page": page})


@reviewer_required
def skip(request: HttpRequest, pk: int) -> HttpResponse:
    """Hand one's own case back with a reason; it never comes back to this reviewer."""
    if request.method != "POST":
        return redirect("reviews:review", pk=pk)
    assignment = _own_assignment(request, pk)
    form = SkipForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why you skip this case; it was not handed back.")
        return redirect("reviews:review", pk=assignment.pk)
    try:
        assignment_release(
            assignment_id=assignment.pk, reviewer=authenticated_user(request), reason=form.cleaned_data["reason"]
        )
    except ReviewWorkflowError as problem:
        messages.error(request, str(problem))
        return redirect("reviews:review", pk=assignment.pk)
    messages.success(request, "Case handed back. It will go to another reviewer.")
    return redirect("reviews:queue")


@reviewer_required
def correct(request: HttpRequest, pk: int) -> HttpResponse:
    """Correct one's own review: a new review with a reason, while the case still waits for reviews."""
    try:
        original = review_for_correction(review_id=pk, reviewer=request.user)
    except Review.DoesNotExist as missing:
        raise Http404("No such review of yours.") from missing
    task = original.task
    form = CorrectionForm(
        request.POST or None,
        labels=list(task.model.labels),
        initial={"label": original.label, "rationale": original.rationale},
    )
    if request.method == "POST" and form.is_valid():
        try:
            review_correct(
                review_id=original.pk,
                reviewer=authenticated_user(request),
                label=form.cleaned_data["label"],
                rationale=form.cleaned_data["rationale"],
                reason=form.cleaned_data["reason"],
                time_spent_seconds=form.cleaned_data["time_spent_seconds"],
            )
        except ReviewWorkflowError as problem:
            form.add_error(None, str(problem))
        else:
            messages.success(request, "Correction recorded; your earlier review is kept alongside it.")
            return redirect("reviews:review", pk=original.assignment_id)
    context = {"original": original, "case": case_view(task, reveal_model=False), "form": form}
    return render(request, "reviews/correct.html", context)


@adjudicator_required
def adjudication_list(request: HttpRequest) -> HttpResponse:
    tasks = escalated_tasks(adjudicator=request.user)
    return render(request, "reviews/adjudication_list.html", {"tasks": tasks})


@adjudicator_required
def adjudicate(request: HttpRequest, task_pk: int) -> HttpResponse:
    """An escalated case with all its reviews and rationales; POST makes the final call."""
    try:
        task, reviews = adjudication_case(task_id=task_pk)
    except ReviewTask.DoesNotExist:
        if ReviewTask.objects.filter(pk=task_pk, status=TaskStatus.DECIDED).exists():
            messages.info(request, "That case has already been decided.")
            return redirect("reviews:adjudication")
        raise Http404("No such escalated case.") from None
    form = AdjudicationForm(request.POST or None, labels=list(task.model.labels))
    if request.method == "POST" and form.is_valid():
        try:
            decision = task_adjudicate(
                task_id=task.pk,
                adjudicator=authenticated_user(request),
                label=form.cleaned_data["label"],
                reason=form.cleaned_data["reason"],
                time_spent_seconds=form.cleaned_data["time_spent_seconds"],
            )
        except ReviewWorkflowError as problem:
            form.add_error(None, str(problem))
        else:
            messages.success(
                request, f"Final call recorded: {task.prediction.case_name} is decided as {decision.final_label}."
            )
            return redirect("reviews:adjudication")
    context = {
        "task": task,
        "case": case_view(task, reveal_model=True),
        "reviews": reviews,
        "form": form,
        "reviewed_it": any(r.reviewer_id == request.user.pk and not r.is_adjudication for r in reviews),
    }
    return render(request, "reviews/adjudicate.html", context)


@adjudicator_required
@require_http_methods(["GET"])
def appeals(request: HttpRequest) -> HttpResponse:
    """Find a decided case by model and case id (or decision id) and show it, ready to be appealed."""
    form = AppealSearchForm(request.GET or None)
    case = None
    if form.is_valid():
        try:
            case = appeal_case_search(
                model=form.cleaned_data["model"],
                external_id=form.cleaned_data["external_id"],
                decision_id=form.cleaned_data["decision"],
            )
        except AppealCaseNotFound as missing:
            form.add_error(None, str(missing))
    return render(request, "reviews/appeals.html", {"form": form, "case": case})


@adjudicator_required
@require_http_methods(["GET", "POST"])
def appeal(request: HttpRequest, decision_id: int) -> HttpResponse:
    """A decided case and the form that reverses its final decision on appeal, with a reason."""
    try:
        case = appeal_case(decision_id=decision_id)
    except Decision.DoesNotExist as missing:
        raise Http404("No such decision.") from missing
    decision = case.decision
    form = AppealForm(request.POST or None, labels=case.labels, current=decision.final_label)
    if request.method == "POST" and form.is_valid():
        try:
            reversed_decision = decision_reverse_on_appeal(
                decision=decision,
                final_label=form.cleaned_data["final_label"],
                actor=authenticated_user(request),
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as problem:
            for name, errors in problem.message_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(
                request,
                f"Decision {decision.pk} reversed on appeal: the final label is now {reversed_decision.final_label}. "
                "The original decision stays in the case's trail (its history and the ledger).",
            )
            return redirect(f"{reverse('reviews:appeals')}?{urlencode({'decision': decision.pk})}")
    return render(request, "reviews/appeal.html", {"case": case, "form": form})
