"""Time-ordered ids (UUIDv7) made in Python, so the schema also runs on PostgreSQL 15."""

from __future__ import annotations

import uuid

from uuid_utils import compat


def uuid7() -> uuid.UUID:
    return compat.uuid7()
