"""The replication job queue: copies to other registries, queued in the transaction of
the push that asks for them, and the state of their attempts.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replication_jobs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("rule", sa.String(255), nullable=False),
        sa.Column("destination", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("reference", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_replication_jobs"),
    )
    op.create_index("ix_replication_jobs_state_id", "replication_jobs", ["state", "id"])
    op.create_index(
        "ix_replication_jobs_rule_destination_state",
        "replication_jobs",
        ["rule", "destination", "state"],
    )


def downgrade() -> None:
    op.drop_index("ix_replication_jobs_rule_destination_state", table_name="replication_jobs")
    op.drop_index("ix_replication_jobs_state_id", table_name="replication_jobs")
    op.drop_table("replication_jobs")
