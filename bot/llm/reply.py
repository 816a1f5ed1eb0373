"""A Messages API reply, read from its raw JSON and checked here: the SDK does not reject a 200 whose body is
cut off or has the wrong fields, so this module is where a malformed reply is caught."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.llm.port import Usage


class MalformedReply(Exception):
    """The API answered 200 with something that is not a usable message."""


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Block(_Part):
    """A content block: text, a tool call, or a kind the bot does not use (kept out of the conversation)."""

    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Block:
        if self.type == "text" and self.text is None:
            raise ValueError("a text block without text")
        if self.type == "tool_use" and (not self.id or not self.name or self.input is None):
            raise ValueError("a tool_use block without its id, name or input")
        return self

    def sent_back(self) -> dict[str, Any] | None:
        """The block as the next request repeats it in the assistant's turn (None: left out)."""
        if self.type == "text":
            return {"type": "text", "text": self.text}
        if self.type == "tool_use":
            return {"type": "tool_use", "id": self.id, "name": self.name, "input": self.input}
        return None


class _Usage(_Part):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cache_read_input_tokens: int | None = Field(default=None, ge=0)
    cache_creation_input_tokens: int | None = Field(default=None, ge=0)


class Reply(_Part):
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[Block]
    stop_reason: str | None
    usage: _Usage

    @property
    def tokens(self) -> Usage:
        u = self.usage
        return Usage(
            u.input_tokens,
            u.output_tokens,
            u.cache_read_input_tokens or 0,
            u.cache_creation_input_tokens or 0,
        )

    def tool_calls(self) -> list[Block]:
        return [b for b in self.content if b.type == "tool_use"]

    def text(self) -> str:
        return "".join(b.text or "" for b in self.content if b.type == "text")


def read_reply(raw: bytes) -> Reply:
    """The reply in `raw`, or MalformedReply saying what is wrong with it."""
    try:
        return Reply.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise MalformedReply(f"{where}: {first['msg']} ({exc.error_count()} problems)") from None
