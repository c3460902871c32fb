"""Handing review tasks to reviewers: claim-next (pull), least-loaded push, skip, and lease expiry.

Claim-next, the hot path (one short transaction, no lock held while a human thinks):

    take the reviewer's own claim lock (two browser tabs must not claim twice)
      -> a live claim (assigned or claimed, lease not over)?  return it, refresh nothing
      -> gold draw: at each policy's gold_rate, a gold case of that model not yet seen by the reviewer
      -> the most urgent task (priority desc, due_at, id) with a free slot, not gold, never assigned to this
         reviewer; take the slot (slots_taken + 1, status in_review), insert the assignment with a lease
      -> commit; the lease, not a lock, keeps the slot while the reviewer works

On PostgreSQL the pick-and-take is one statement (`_claim_sql`): SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1
walking the partial index `review_task_claim_order`, then the assignment insert, the slot update and both
history rows as data-modifying CTEs: one round trip, no ORM work on the hot path. Two reviewers claiming at
once lock different rows, so nobody waits behind another's claim and no task gets more live assignments than
it needs; the unique (task, reviewer) constraint is the last line of defence against giving a reviewer the
same task twice. On SQLite the same steps run through the ORM: its IMMEDIATE transactions take the database
write lock at BEGIN, which serialises claims and gives the same result.

Lock order everywhere: task row, then its assignments. Escalated tasks are never claimed here: they reach
adjudicators through the adjudication page. Gold cases (known answer) take no slot, stay open for every
reviewer, and never produce a decision; a reviewer cannot tell them from other cases.
"""

import functools
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from hitl_platform.db import column_of
from hitl_platform.history import historise, history_insert_sql
from reviews.choices import CLAIMABLE_TASK_STATUSES, AssignmentStatus, AssignmentStrategy, TaskStatus
from reviews.exceptions import ReviewWorkflowError
from reviews.models import Assignment, Prediction, ReviewTask, RoutingPolicy
from reviews.selectors.policies import routing_policies_effective
from reviews.selectors.queue import CLAIM_ORDER, OPEN_ASSIGNMENT_STATUSES, claimable_tasks, open_assignments

logger = logging.getLogger(__name__)

# Names the advisory-lock key space of per-reviewer claim locks ("HITC"), apart from the ledger's lock.
CLAIM_LOCK_NAMESPACE = 0x48495443
CLAIMED_REASON = "Claimed as the next task"
SLOT_CLAIMED_REASON = "Reviewer claimed a review slot"
CLAIM_ATTEMPTS = 3
DEADLOCK_DETECTED = "40P01"


@dataclass(frozen=True)
class PolicySettings:
    """The assignment settings of one model's routing policy (defaults when the model has none)."""

    lease_minutes: int
    max_open_claims: int

    @classmethod
    def of(cls, policy: RoutingPolicy) -> "PolicySettings":
        return cls(lease_minutes=policy.lease_minutes, max_open_claims=policy.max_open_claims_per_reviewer)


def policy_settings_for(model_ids) -> dict[int, PolicySettings]:
    """Assignment settings per model id, from each model's effective routing policy."""
    return {model_id: PolicySettings.of(policy) for model_id, policy in routing_policies_effective(model_ids).items()}


def _gold_tasks_for(reviewer, model_ids) -> QuerySet[ReviewTask]:
    already_assigned = Assignment.objects.filter(task_id=OuterRef("pk"), reviewer=reviewer)
    return (
        ReviewTask.objects.filter(model_id__in=model_ids, status__in=CLAIMABLE_TASK_STATUSES, prediction__is_gold=True)
        .filter(~Exists(already_assigned))
        .order_by(*CLAIM_ORDER)
    )


def _gold_models_drawn(draw: float) -> list[int]:
    """Models whose policy serves a gold case on this claim: those whose gold_rate exceeds the draw."""
    return list(RoutingPolicy.objects.filter(gold_rate__gt=draw).values_list("model_id", flat=True))


def _serialise_claims_of(reviewer) -> None:
    """One claim at a time per reviewer (two browser tabs), without writing anything.

    PostgreSQL: a transaction-level advisory lock in a key space of its own (a row lock on the user would
    dirty the row and cost a WAL flush on every claim). SQLite: its IMMEDIATE transactions already serialise
    every writer, so there is nothing more to take.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [CLAIM_LOCK_NAMESPACE, reviewer.pk])


def _open_pushed(assignment: Assignment, *, reviewer, now: datetime) -> Assignment:
    """A pushed assignment becomes a claim with a fresh lease when its reviewer first takes it up."""
    settings = policy_settings_for([assignment.task.model_id])[assignment.task.model_id]
    assignment.status = AssignmentStatus.CLAIMED
    assignment.claimed_at = now
    assignment.lease_expires_at = now + timedelta(minutes=settings.lease_minutes)
    historise(assignment, actor=reviewer, reason="Reviewer opened a pushed assignment")
    assignment.save(update_fields=["status", "claimed_at", "lease_expires_at"])
    return assignment


def review_slot_take(task: ReviewTask, *, actor: User, reason: str) -> None:
    """Take one of a locked task's review slots for ``actor`` (a claim, a push, a late submit), with history."""
    task.slots_taken += 1
    task.status = TaskStatus.IN_REVIEW
    historise(task, actor=actor, reason=reason)
    task.save(update_fields=["slots_taken", "status"])


def _task_slot_freed(task: ReviewTask) -> None:
    """Give a slot back; a task nobody holds or has answered is open again."""
    task.slots_taken -= 1
    if task.status in CLAIMABLE_TASK_STATUSES:
        task.status = TaskStatus.IN_REVIEW if task.slots_taken else TaskStatus.OPEN


def assignment_claim_next(*, reviewer: User, now: datetime | None = None) -> Assignment | None:
    """Claim the most urgent task this reviewer may take, or return the live claim they already hold.

    Returns None when nothing is claimable. See the module docstring for the order of checks.

    On PostgreSQL a claim first skips locked rows. Only when every claimable row is locked by claims in flight
    (a nearly empty queue) does it wait for those locks, in a transaction of its own: the skipping one may hold
    a row it locked but could not take (PostgreSQL keeps the lock of a row that stopped qualifying while it
    waited), and waiting while holding it could deadlock with another waiting claim. Should PostgreSQL still
    report a deadlock, the aborted claim has written nothing and simply runs again.
    """
    attempt = 1
    while True:
        try:
            try:
                return _claim_next(reviewer=reviewer, now=now, skip_locked=True)
            except _OnlyLockedTasksLeft:
                return _claim_next(reviewer=reviewer, now=now, skip_locked=False)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != DEADLOCK_DETECTED or attempt == CLAIM_ATTEMPTS:
                raise
            logger.info("claim by reviewer %s lost a deadlock; claiming again", reviewer.pk)
            attempt += 1


def _claim_next(*, reviewer, now: datetime | None, skip_locked: bool) -> Assignment | None:
    now = now or timezone.now()
    with transaction.atomic():
        _serialise_claims_of(reviewer)
        live = open_assignments(reviewer, now=now).values_list("pk", "status").first()
        if live is not None:
            assignment = Assignment.objects.select_related("task").get(pk=live[0])
            if assignment.status == AssignmentStatus.ASSIGNED:
                return _open_pushed(assignment, reviewer=reviewer, now=now)
            return assignment

        gold_models = _gold_models_drawn(random.random())
        if gold_models:
            gold_task = _gold_tasks_for(reviewer, gold_models).only("id", "model_id").first()
            if gold_task is not None:
                return _assignment_create(task=gold_task, reviewer=reviewer, now=now, takes_slot=False)

        if connection.vendor == "postgresql":
            return _claim_on_postgresql(reviewer=reviewer, now=now, skip_locked=skip_locked)
        task = claimable_tasks(reviewer).first()
        if task is None:
            return None
        return _assignment_create(task=task, reviewer=reviewer, now=now, takes_slot=True)


def _assignment_create(*, task: ReviewTask, reviewer, now: datetime, takes_slot: bool) -> Assignment:
    settings = policy_settings_for([task.model_id])[task.model_id]
    if takes_slot:
        review_slot_take(task, actor=reviewer, reason=SLOT_CLAIMED_REASON)
    assignment = Assignment(
        task=task,
        reviewer=reviewer,
        status=AssignmentStatus.CLAIMED,
        claimed_at=now,
        lease_expires_at=now + timedelta(minutes=settings.lease_minutes),
    )
    historise(assignment, actor=reviewer, reason=CLAIMED_REASON)
    assignment.save()
    return assignment


def _quoted(value: str) -> str:
    if not value.replace("_", "").isalnum():
        raise ValueError(f"not a plain status value: {value!r}")
    return f"'{value}'"


@functools.cache
def _claim_sql(*, skip_locked: bool) -> tuple[str, tuple[str, ...]]:
    """The claim as one statement: pick, insert the assignment, take the slot, write both history rows.

    Returns the SQL and the assignment columns it returns (after `picked_id`). The assignment is inserted
    first with ON CONFLICT DO NOTHING and the slot taken only for an inserted assignment, so a task pushed
    to this reviewer at the same instant yields no claim (the caller retries) rather than an error.
    """
    qn = connection.ops.quote_name
    task, prediction, assignment, policy = (
        qn(model._meta.db_table) for model in (ReviewTask, Prediction, Assignment, RoutingPolicy)
    )
    claimable = ", ".join(_quoted(status) for status in CLAIMABLE_TASK_STATUSES)
    explicit = {
        "task_id": "picked.id",
        "reviewer_id": "%(reviewer)s",
        "status": _quoted(AssignmentStatus.CLAIMED),
        "claimed_at": "%(now)s",
        "lease_expires_at": "%(now)s + make_interval(mins => COALESCE(policy.lease_minutes, %(default_lease)s))",
    }
    fields = [field for field in Assignment._meta.concrete_fields if not field.primary_key]
    columns = [column_of(field) for field in fields]
    values = [explicit.get(column, f"%(default_{column})s") for column in columns]
    returned = tuple(column_of(field) for field in Assignment._meta.concrete_fields)
    sql = f"""
        WITH picked AS (
            SELECT t.id, t.model_id FROM {task} t JOIN {prediction} p ON p.id = t.prediction_id
            WHERE t.status IN ({claimable}) AND t.slots_taken < t.reviews_required AND NOT p.is_gold
              AND NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.task_id = t.id AND a.reviewer_id = %(reviewer)s)
            ORDER BY t.priority DESC, t.due_at, t.id
            LIMIT 1
            FOR UPDATE OF t{" SKIP LOCKED" if skip_locked else ""}
        ),
        claimed AS (
            INSERT INTO {assignment} ({", ".join(qn(c) for c in columns)})
            SELECT {", ".join(values)} FROM picked LEFT JOIN {policy} policy ON policy.model_id = picked.model_id
            ON CONFLICT ON CONSTRAINT one_assignment_per_task_and_reviewer DO NOTHING
            RETURNING *
        ),
        taken AS (
            UPDATE {task} t SET slots_taken = t.slots_taken + 1, status = {_quoted(TaskStatus.IN_REVIEW)}
            FROM claimed WHERE t.id = claimed.task_id
            RETURNING t.*
        ),
        task_history AS ({history_insert_sql(ReviewTask, "taken", history_type="~", reason_param="task_reason")}),
        claim_history AS ({history_insert_sql(Assignment, "claimed", history_type="+", reason_param="claim_reason")})
        SELECT picked.id, {", ".join(f"claimed.{qn(c)}" for c in returned)}
        FROM picked LEFT JOIN claimed ON claimed.task_id = picked.id
    """
    return sql, returned


class _OnlyLockedTasksLeft(Exception):
    """Every claimable task is locked by claims in flight (or none is left): only waiting can tell which."""


def _claim_on_postgresql(*, reviewer, now: datetime, skip_locked: bool) -> Assignment | None:
    """Claim with one statement walking the claim index, skipping locked rows or waiting for them."""
    params = {
        "reviewer": reviewer.pk,
        "now": now,
        "default_lease": RoutingPolicy._meta.get_field("lease_minutes").default,
        "task_reason": SLOT_CLAIMED_REASON,
        "claim_reason": CLAIMED_REASON,
    }
    for field in Assignment._meta.concrete_fields:
        params[f"default_{field.column}"] = field.get_db_prep_save(field.get_default(), connection)
    sql, returned = _claim_sql(skip_locked=skip_locked)
    for _ in range(3):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            if skip_locked:
                raise _OnlyLockedTasksLeft
            return None
        _picked_id, *columns = row
        if columns[0] is not None:
            return Assignment.from_db(connection.alias, list(returned), columns)
        # The picked task was pushed to this reviewer at the same instant: pick again with a fresh snapshot.
    return None


def assignment_release(*, assignment_id: int, reviewer: User, reason: str) -> Assignment:
    """The reviewer hands back (skips) their own open assignment, with a reason; the slot is freed.

    The task never comes back to this reviewer: an assignment in any status counts as already assigned.
    """
    reason = reason.strip()
    if not reason:
        raise ReviewWorkflowError("Say why you skip this case.")
    with transaction.atomic():
        task_id = Assignment.objects.filter(pk=assignment_id, reviewer=reviewer).values_list("task_id", flat=True).get()
        task = ReviewTask.objects.select_for_update(of=("self",)).select_related("prediction").get(pk=task_id)
        assignment = Assignment.objects.get(pk=assignment_id)
        if assignment.status not in OPEN_ASSIGNMENT_STATUSES:
            raise ReviewWorkflowError(
                f"This case is no longer yours to skip (its assignment is {assignment.get_status_display().lower()})."
            )
        now = timezone.now()
        assignment.status = AssignmentStatus.RELEASED
        assignment.finished_at = now
        assignment.release_reason = reason
        historise(assignment, actor=reviewer, reason=f"Skipped by the reviewer: {reason}")
        assignment.save(update_fields=["status", "finished_at", "release_reason"])
        if not task.prediction.is_gold:
            _task_slot_freed(task)
            historise(task, actor=reviewer, reason=f"Review slot freed: reviewer skipped ({reason})")
            task.save(update_fields=["slots_taken", "status"])
    logger.info("assignment %s on task %s skipped by reviewer %s", assignment.pk, task.pk, reviewer.pk)
    return assignment


def assignments_expire_leases(*, now: datetime | None = None, batch_size: int = 500) -> list[int]:
    """Expire open assignments whose lease is over and free their slots; return the expired assignment ids.

    Tasks are locked with SKIP LOCKED: a task being submitted or claimed right now is left for the next run
    rather than waited for. Each expired assignment and each freed task gets a history row with the reason.
    """
    now = now or timezone.now()
    with transaction.atomic():
        task_ids = set(
            Assignment.objects.filter(status__in=OPEN_ASSIGNMENT_STATUSES, lease_expires_at__lt=now)
            .order_by("lease_expires_at")
            .values_list("task_id", flat=True)[:batch_size]
        )
        if not task_ids:
            return []
        tasks = {
            task.pk: task
            for task in ReviewTask.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("prediction")
            .filter(pk__in=task_ids)
        }
        expired = list(
            Assignment.objects.filter(
                task_id__in=tasks, status__in=OPEN_ASSIGNMENT_STATUSES, lease_expires_at__lt=now
            ).order_by("id")
        )
        freed: dict[int, ReviewTask] = {}
        for assignment in expired:
            assignment.status = AssignmentStatus.EXPIRED
            assignment.finished_at = now
            expired_at = assignment.lease_expires_at
            assert expired_at is not None, "selected by lease_expires_at < now"
            assignment.release_reason = f"Lease expired at {expired_at.isoformat()}"
            task = tasks[assignment.task_id]
            if not task.prediction.is_gold:
                _task_slot_freed(task)
                freed[task.pk] = task
        bulk_update_with_history(
            expired,
            Assignment,
            ["status", "finished_at", "release_reason"],
            default_change_reason="Lease expired: released by the periodic sweep",
        )
        bulk_update_with_history(
            list(freed.values()),
            ReviewTask,
            ["slots_taken", "status"],
            default_change_reason="Review slot freed: a lease expired",
        )
    ids = [assignment.pk for assignment in expired]
    if ids:
        logger.info("released %d expired leases (assignments %s) on tasks %s", len(ids), ids, sorted(freed))
    return ids


def review_tasks_flag_sla_breaches(*, now: datetime | None = None, batch_size: int = 1000) -> list[int]:
    """Mark unfinished, overdue tasks as SLA-breached (history row with the reason); return their ids.

    Gold cases have no deadline that matters to anyone and are left alone.
    """
    now = now or timezone.now()
    with transaction.atomic():
        overdue = list(
            ReviewTask.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status__in=(*CLAIMABLE_TASK_STATUSES, TaskStatus.ESCALATED),
                due_at__lt=now,
                sla_breached=False,
                prediction__is_gold=False,
            )
            .order_by("due_at")[:batch_size]
        )
        for task in overdue:
            task.sla_breached = True
        bulk_update_with_history(
            overdue, ReviewTask, ["sla_breached"], default_change_reason="SLA breached: not decided by its due time"
        )
    ids = [task.pk for task in overdue]
    if ids:
        logger.warning("%d review tasks breached their SLA: %s", len(ids), ids)
    return ids


def eligible_reviewers() -> QuerySet:
    """Active people holding the reviewer permission through a role group or directly."""
    permission = Permission.objects.get(content_type__app_label="reviews", codename="review_cases")
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__permissions=permission) | Q(user_permissions=permission))
        .distinct()
        .order_by("id")
    )


def review_tasks_push_assign(*, now: datetime | None = None, batch_size: int = 200) -> list[Assignment]:
    """Least-loaded push: give the free slots of tasks under that strategy to the least-busy reviewers.

    Load is a reviewer's number of open assignments; ties go to the lower user id. A reviewer is never pushed
    a task they were assigned before, nor more open assignments of one model than its policy's cap. Reviewers
    can still pull these tasks. Tasks are locked with SKIP LOCKED so concurrent claims are not blocked.
    """
    now = now or timezone.now()
    push_models = {
        policy.model_id: PolicySettings.of(policy)
        for policy in RoutingPolicy.objects.filter(assignment_strategy=AssignmentStrategy.LEAST_LOADED)
    }
    if not push_models:
        return []
    with transaction.atomic():
        tasks = list(
            ReviewTask.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                model_id__in=push_models,
                status__in=CLAIMABLE_TASK_STATUSES,
                slots_taken__lt=F("reviews_required"),
                prediction__is_gold=False,
            )
            .order_by(*CLAIM_ORDER)[:batch_size]
        )
        reviewers = list(eligible_reviewers())
        if not tasks or not reviewers:
            return []
        open_rows = Assignment.objects.filter(
            reviewer__in=reviewers, status__in=OPEN_ASSIGNMENT_STATUSES, is_adjudication=False
        )
        load = {reviewer.pk: 0 for reviewer in reviewers}
        model_load: dict[tuple[int, int], int] = {}
        for reviewer_id, model_id, count in open_rows.values_list("reviewer_id", "task__model_id").annotate(
            count=Count("id")
        ):
            load[reviewer_id] += count
            model_load[reviewer_id, model_id] = count
        already = set(Assignment.objects.filter(task__in=tasks).values_list("task_id", "reviewer_id").order_by())

        created: list[Assignment] = []
        changed: list[ReviewTask] = []
        for task in tasks:
            policy = push_models[task.model_id]
            candidates = sorted(
                (
                    reviewer
                    for reviewer in reviewers
                    if (task.pk, reviewer.pk) not in already
                    and model_load.get((reviewer.pk, task.model_id), 0) < policy.max_open_claims
                ),
                key=lambda reviewer: (load[reviewer.pk], reviewer.pk),
            )
            chosen = candidates[: task.reviews_required - task.slots_taken]
            for reviewer in chosen:
                created.append(
                    Assignment(
                        task=task,
                        reviewer=reviewer,
                        status=AssignmentStatus.ASSIGNED,
                        claimed_at=now,
                        lease_expires_at=now + timedelta(minutes=policy.lease_minutes),
                    )
                )
                load[reviewer.pk] += 1
                model_load[reviewer.pk, task.model_id] = model_load.get((reviewer.pk, task.model_id), 0) + 1
                task.slots_taken += 1
                task.status = TaskStatus.IN_REVIEW
            if chosen:
                changed.append(task)
        bulk_create_with_history(
            created, Assignment, default_change_reason="Pushed to the least-loaded reviewer", batch_size=500
        )
        bulk_update_with_history(
            changed, ReviewTask, ["slots_taken", "status"], default_change_reason="Review slots pushed to reviewers"
        )
    if created:
        logger.info("pushed %d assignments on %d tasks", len(created), len(changed))
    return created
