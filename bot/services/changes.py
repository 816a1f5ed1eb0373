"""Incident changes, for whoever shows incidents outside their own messages (the App Home tab).

Whatever changes an incident calls `changed` once its transaction has committed; every observer is
called in turn. An observer's failure is logged and goes no further: the change itself has happened."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Observer = Callable[[int | None], None]


class IncidentChanges:
    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self._lock = threading.Lock()

    def subscribe(self, observer: Observer) -> None:
        """Call `observer(incident_id)` after each change (None: some incidents, not said which)."""
        with self._lock:
            self._observers.append(observer)

    def changed(self, incident_id: int | None = None) -> None:
        """Tell every observer that `incident_id` changed."""
        with self._lock:
            observers = list(self._observers)
        for observer in observers:
            try:
                observer(incident_id)
            except Exception:
                about = f"INC-{incident_id}" if incident_id is not None else "a change"
                log.exception("an observer of incident changes failed on %s", about)
