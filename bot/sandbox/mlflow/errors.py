"""MLflow's REST answers: JSON bodies, and errors with MLflow's `error_code`."""

from __future__ import annotations

import json
from typing import Any

from bot.sandbox.loopback import Answer


class MlflowError(Exception):
    """A request MLflow refuses, answered with HTTP `code` and `{"error_code", "message"}`."""

    def __init__(self, code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.error_code, self.message = code, error_code, message

    def answer(self) -> Answer:
        return json_answer(self.code, {"error_code": self.error_code, "message": self.message})


def not_found(message: str) -> MlflowError:
    return MlflowError(404, "RESOURCE_DOES_NOT_EXIST", message)


def json_answer(code: int, payload: Any) -> Answer:
    return code, "application/json", json.dumps(payload).encode()
