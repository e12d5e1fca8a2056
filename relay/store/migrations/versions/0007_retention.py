"""A table of jobs that one relay node at a time runs: when each last ran (the daily retention).

Revision ID: 0007
Revises: 0006

One row per job; a node claims a run by moving ``ranAt`` forward in a single
``UPDATE … WHERE ranAt <= :due``, which only one node's statement can do for a
given due time on either database, so no lock is held while the job runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from relay.store.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    jobs = op.create_table(
        "job_run",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("ranAt", UTCDateTime(), nullable=False),
    )
    op.bulk_insert(jobs, [{"name": "retention", "ranAt": datetime(1970, 1, 1, tzinfo=UTC)}])


def downgrade() -> None:
    op.drop_table("job_run")
