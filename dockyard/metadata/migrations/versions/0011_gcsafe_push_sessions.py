"""Push sessions (gc_push_sessions): per repository, when a client last pushed to it and
since when without a rest as long as the review delay, so that the collector keeps what a
push that is still running wanted, however long the push takes.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gc_push_sessions",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repositories.id"],
            name="fk_gc_push_sessions_repository_id_repositories",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("repository_id", name="pk_gc_push_sessions"),
    )


def downgrade() -> None:
    op.drop_table("gc_push_sessions")
