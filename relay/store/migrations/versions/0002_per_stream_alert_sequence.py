"""Each stream numbers its alerts, under a lock on its row, so that they commit in order on every node.

Existing alerts are numbered per stream in their storage order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video_stream") as table:
        table.add_column(sa.Column("lastAlertSeq", sa.BigInteger(), nullable=False, server_default="0"))
    with op.batch_alter_table("alert") as table:
        table.add_column(sa.Column("streamSeq", sa.BigInteger(), nullable=True))
    op.execute(
        'UPDATE alert SET "streamSeq" = numbered.n FROM ('
        '  SELECT seq, ROW_NUMBER() OVER (PARTITION BY "streamId" ORDER BY seq) AS n FROM alert'
        ") AS numbered WHERE alert.seq = numbered.seq"
    )
    op.execute(
        'UPDATE video_stream SET "lastAlertSeq" = COALESCE('
        '  (SELECT MAX(alert."streamSeq") FROM alert WHERE alert."streamId" = video_stream.id), 0)'
    )
    with op.batch_alter_table("alert") as table:
        table.alter_column("streamSeq", existing_type=sa.BigInteger(), nullable=False)
        table.create_unique_constraint("uq_alert_stream_stream_seq", ["streamId", "streamSeq"])


def downgrade() -> None:
    with op.batch_alter_table("alert") as table:
        table.drop_constraint("uq_alert_stream_stream_seq", type_="unique")
        table.drop_column("streamSeq")
    with op.batch_alter_table("video_stream") as table:
        table.drop_column("lastAlertSeq")
