"""Whether a failure means the database cannot take requests now (down, unreachable, read-only), for the
layers above the services, which never see the database's own exception types."""

from __future__ import annotations

from bot.store.db import unavailable as database_unavailable

__all__ = ["database_unavailable"]
