"""Alerts get the frame they are about, and a review: snapshots, reviewed / false positive, keep, a note.

Revision ID: 0005
Revises: 0004

Plain ``ADD COLUMN``s (SQLite needs no table rebuild for them, so the FTS5
triggers of 0004 stay as they are), and a table of snapshots that go with
their alert.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relay.store.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alert", sa.Column("frameTimestamp", sa.BigInteger(), nullable=True))
    for name in ("hasSnapshot", "reviewed", "falsePositive", "keep"):
        op.add_column("alert", sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("alert", sa.Column("reviewedBy", sa.String(length=150), nullable=True))
    op.add_column("alert", sa.Column("reviewedAt", UTCDateTime(), nullable=True))
    op.add_column("alert", sa.Column("note", sa.Text(), nullable=True))
    op.create_index("ix_alert_stream_reviewed", "alert", ["streamId", "reviewed"])
    op.create_index("ix_alert_reviewed_at", "alert", ["reviewedAt"])  # the analytics copy's days to rewrite
    op.create_table(
        "alert_snapshot",
        sa.Column("alertId", sa.String(length=64), sa.ForeignKey("alert.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.Column("frameTimestamp", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("alert_snapshot")
    op.drop_index("ix_alert_reviewed_at", table_name="alert")
    op.drop_index("ix_alert_stream_reviewed", table_name="alert")
    for name in (
        "note",
        "reviewedAt",
        "reviewedBy",
        "keep",
        "falsePositive",
        "reviewed",
        "hasSnapshot",
        "frameTimestamp",
    ):
        op.drop_column("alert", name)
