"""The workflow errors of the reviews app: what a caller did that cannot be done now, with a message for them.

Views turn them into answers: a form error on a reviewer page, a 400 or 409 in the API. Nothing is stored when
one is raised.
"""

from dataclasses import dataclass
from typing import Any


class ReviewWorkflowError(Exception):
    """A reviewer's action that cannot be done now, with a message written for them."""


class OutcomeConflictError(Exception):
    """A different outcome is already recorded and the call is not marked as a correction."""


@dataclass(frozen=True, slots=True)
class IntakeError:
    """One problem with a batch: the item's index (None for the whole batch), the field, and what is wrong."""

    index: int | None
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


class IntakeValidationError(Exception):
    """The batch is invalid (answered 400); nothing was stored."""

    def __init__(self, errors: list[IntakeError], *, total: int):
        self.errors = errors
        self.total = total
        bad_items = len({error.index for error in errors if error.index is not None})
        if bad_items:
            self.message = f"{bad_items:,} of {total:,} predictions are invalid; nothing was stored."
        else:
            self.message = f"{errors[0].message} Nothing was stored."
        super().__init__(self.message)


class IntakeConflictError(Exception):
    """Some external_ids are already stored with another payload (answered 409); nothing was stored."""

    def __init__(self, conflicts: list[IntakeError], *, total: int):
        self.conflicts = conflicts
        self.message = (
            f"{len(conflicts):,} of {total:,} predictions reuse an external_id already stored with a different "
            "payload; nothing was stored. Drop or fix those items and send the batch again."
        )
        super().__init__(self.message)
