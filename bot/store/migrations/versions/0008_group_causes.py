"""group causes: the cause Level 1 found that other incidents may share, the delivery that opened an
incident, which grouped escalations are listed on a page of their group's thread (the others keep a
message of their own) and who split one out of its group; a group's member count, never read, goes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cause_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True)
        )
        batch_op.create_index("ix_incidents_cause_key", ["cause_key"], unique=False)
        batch_op.add_column(sa.Column("delivery_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_page", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("split_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    # every member grouped so far was listed on a page of its group's thread
    op.execute("UPDATE escalations SET on_page = (group_id IS NOT NULL)")
    with op.batch_alter_table("escalation_groups", schema=None) as batch_op:
        batch_op.drop_column("member_count")  # counted from the members when needed


def downgrade() -> None:
    with op.batch_alter_table("escalation_groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("member_count", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_column("split_by")
        batch_op.drop_column("on_page")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("delivery_id")
        batch_op.drop_index("ix_incidents_cause_key")
        batch_op.drop_column("cause_key")
