"""stats: incidents by when they were opened, for the period queries of /escalation stats, the digest and
the rate gauges

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at"])


def downgrade() -> None:
    op.drop_index("ix_incidents_opened_at", table_name="incidents")
