"""The loopback stand-in for Anthropic's Messages API, as tests use it: `AnthropicServer` answered from a
script of replies (`message`, `tool_use`, `text`, `error`, `usage`, `Scripted`), every request recorded in
`.received`. It lives in bot/sandbox/anthropic_api.py, where the demo uses it too."""

from __future__ import annotations

from bot.sandbox.anthropic_api import (
    AnthropicServer,
    Received,
    Scripted,
    error,
    message,
    text,
    tool_use,
    usage,
)

__all__ = ["AnthropicServer", "Received", "Scripted", "error", "message", "text", "tool_use", "usage"]
