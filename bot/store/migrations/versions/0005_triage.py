"""triage: how an incident's category was decided, and the category Level 1's evidence replaced

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "classified_by",
                sqlmodel.sql.sqltypes.AutoString(length=16),
                nullable=False,
                server_default="name",
            )
        )
        batch_op.add_column(
            sa.Column("reclassified_from", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("reclassified_from")
        batch_op.drop_column("classified_by")
