"""Tokens can be told apart without being kept: their first characters, and when they were last used.

Revision ID: 0006
Revises: 0005

``prefix`` holds the 8 characters after ``vr_`` (48 of the token's 256 random
bits: what is left is still far beyond guessing), so that ``relay tokens
list`` can show which token is which and ``relay tokens revoke PREFIX`` can
name one.  Tokens issued before this revision have none (they are listed by
their creation time and revoked with ``revoke-all``).  ``lastUsedAt`` is
written at most once a minute per token.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from relay.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_token", sa.Column("prefix", sa.String(length=16), nullable=True))
    op.add_column("api_token", sa.Column("lastUsedAt", UTCDateTime(), nullable=True))
    op.create_index("ix_api_token_prefix", "api_token", ["prefix"])


def downgrade() -> None:
    op.drop_index("ix_api_token_prefix", table_name="api_token")
    with op.batch_alter_table("api_token") as table:
        table.drop_column("lastUsedAt")
        table.drop_column("prefix")
