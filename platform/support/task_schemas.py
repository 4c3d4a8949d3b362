"""API input and output types for customer-service tasks. Values (who may be assigned, a comment
that says something) are checked by ``orders.service_tasks`` once the task is found, so that
another company's task is 404 whatever the body."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Email = Annotated[str, msgspec.Meta(max_length=320, extra={"message": "An email has at most 320 characters."})]


class TaskOut(msgspec.Struct):
    id: uuid.UUID
    order_id: uuid.UUID
    order_number: str
    order_status: str
    kind: str
    title: str
    subject: str  # what on the order it is about: a return's id for return tasks, '' for the order itself
    status: str
    detail: str
    occurrences: int
    assigned_to: str | None
    comments_count: int
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None


class TaskPage(msgspec.Struct):
    tasks: list[TaskOut]
    next_cursor: str | None


class ResolveIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=2000)] = ""  # required: checked once the task is found


class AssignIn(msgspec.Struct, forbid_unknown_fields=True):
    """``{"assignee": "agent@example.com"}`` gives the task to that member, ``{"assignee": null}``
    to nobody."""

    assignee: Email | msgspec.UnsetType | None = msgspec.UNSET  # required: checked once the task is found


class CommentIn(msgspec.Struct, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(max_length=4000)] = ""  # required, at most 2,000 characters once trimmed


class CommentOut(msgspec.Struct):
    id: uuid.UUID
    task_id: uuid.UUID
    body: str
    author: str
    created_at: datetime
