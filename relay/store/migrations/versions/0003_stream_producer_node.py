"""Streams remember which relay node their producer is on, so that survivors can take a dead node's streams offline.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video_stream") as table:
        table.add_column(sa.Column("producerNode", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("video_stream") as table:
        table.drop_column("producerNode")
