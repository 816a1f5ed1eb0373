"""Alerts other bots post into subscribed Slack channels → AlertIn.

Three shapes arrive as `message` events: a modern app's bot-token post (no subtype, `bot_id`), an
incoming-webhook post (`subtype: bot_message`, no `user`) and an edit of either (`subtype:
message_changed`, the new content in `event.message`). Alertmanager's `slack_configs` posts carry one
attachment titled `[FIRING:n] <group labels> (<common labels>)` or `[RESOLVED] …` and no top-level text;
label lines in the attachment text (`*Key:* value`, `key: value`, `key=value`) become labels.

The fingerprint is the channel plus the title without its status prefix (for Alertmanager titles, only
the group-label part, since the common labels in parentheses change as alerts join the group), so the
same alert keeps its incident across repeat posts, edits and the resolved post. Without that prefix, a
`status: resolved` line or Slack's green ("good") color marks a post as resolved.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bot.core.models import AlertIn
from bot.core.redact import redact, redact_obj

log = logging.getLogger(__name__)

JSON = dict[str, Any]

# Subtypes that can carry an alert; joins, topics, file shares, deletions and thread broadcasts cannot.
_ALERT_SUBTYPES = {None, "bot_message"}
_PREFIX = re.compile(r"^\[(?P<status>FIRING|RESOLVED)(?::\s*(?P<count>\d+))?\]\s*(?P<rest>.*)$", re.I | re.S)
_TRAILING_PARENS = re.compile(r"^(?P<group>.*?)\s*\((?P<common>[^()]*)\)\s*$", re.S)
# at most three words before the colon, and not a URL's scheme
_KEY_VALUE_LINE = re.compile(
    r"^(?P<key>[A-Za-z][\w.-]{0,39}(?: [\w.-]{1,20}){0,2})\s*:\s*(?!//)(?P<value>\S.*)$"
)
_KEY_EQUALS = re.compile(r"(?P<key>[A-Za-z_][\w.-]{0,39})=(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;]+)")
_SLACK_LINK = re.compile(r"<(?P<target>[^>|]+)(?:\|(?P<label>[^>]*))?>")
_LEADING_NOISE = re.compile(r"^(?:[\s*_~`>•·-]|:[a-z0-9_+-]+:)+")
_BULLET = re.compile(r"^\s*(?:[•·*-]|\d+\.)\s+")
_FINGERPRINT_MAX = 255
_KEY_ALIASES = {"alert_name": "alertname"}
# Label names that describe rather than identify the alert (Alertmanager keeps these as annotations).
_ANNOTATION_KEYS = {
    "alert",
    "summary",
    "description",
    "message",
    "runbook",
    "runbook_url",
    "impact",
    "dashboard",
}
# Slack's "good" attachment color, by name or as the hex value it stands for.
_RESOLVED_COLORS = {"good", "2eb886", "#2eb886"}


def parse_slack_alert(
    event: JSON, alert_channel_ids: set[str], bot_user_id: str | None, bot_id: str | None
) -> AlertIn | None:
    """The alert a bot's message in a subscribed channel carries; None for anything else."""
    try:
        return _parse(event, alert_channel_ids, bot_user_id, bot_id)
    except Exception:  # a shape no one foresaw is not an alert, and never breaks the listener
        log.debug("slack message not parsed as an alert: %r", event, exc_info=True)
        return None


def subscribed_channel_refs(alert_channels: Iterable[str], default_channel: str) -> list[str]:
    """The configured alert channels (ids or #names); none configured means the bot's own alert channel."""
    refs = [ref for ref in alert_channels if ref]
    return refs or [default_channel]


def _parse(
    event: JSON, alert_channel_ids: set[str], bot_user_id: str | None, bot_id: str | None
) -> AlertIn | None:
    channel = event.get("channel")
    if event.get("type") != "message" or not isinstance(channel, str) or channel not in alert_channel_ids:
        return None
    message: Any = event
    previous: Any = None
    if event.get("subtype") == "message_changed":
        message, previous = event.get("message"), event.get("previous_message")
        if not isinstance(message, dict):
            return None
    if not _is_foreign_bot_post(message, bot_user_id, bot_id):
        return None
    content = _content(message)
    if content is None:
        return None
    if isinstance(previous, dict) and _content(previous) == content:
        return None  # Slack also sends message_changed for unfurls and thread metadata: nothing new
    # an edit is a new notification of the alert: it counts from when it was made, not from the post
    seen_at = (event.get("ts") or event.get("event_ts")) if message is not event else None
    return _alert(channel, str(message["ts"]), str(seen_at or message["ts"]), message, content)


def _is_foreign_bot_post(message: JSON, bot_user_id: str | None, bot_id: str | None) -> bool:
    if message.get("subtype") not in _ALERT_SUBTYPES or not isinstance(message.get("ts"), str):
        return False
    thread_ts = message.get("thread_ts")
    if thread_ts and thread_ts != message["ts"]:
        return False  # a reply in a thread (ours included) is conversation, not a new alert
    profile = message.get("bot_profile")
    profile_id = profile.get("id") if isinstance(profile, dict) else None
    authors = {message.get("user"), message.get("bot_id"), profile_id} - {None}
    if authors & ({bot_user_id, bot_id} - {None}):
        return False
    # people post with a `user` and no `bot_id`; webhooks post with neither `user` nor a person behind it
    return bool(message.get("bot_id") or message.get("subtype") == "bot_message")


def _content(message: JSON) -> tuple[str, str, dict[str, str], str] | None:
    """(title, text, key/values, color) of a message, or None when it has nothing to say."""
    attachments = [a for a in message.get("attachments") or [] if isinstance(a, dict)]
    top_text = _plain(str(message.get("text") or ""))
    blocks_text = _blocks_text(message.get("blocks"))
    # `text` is often only the notification fallback of the blocks, or repeats their header
    seen = set(top_text.splitlines())
    extra = [line for line in blocks_text.splitlines() if line not in seen]
    top_text = "\n".join([top_text, *extra] if top_text else extra)
    title = next((t for t in (_plain(str(a.get("title") or "")) for a in attachments) if t), "")
    texts: list[str] = []
    pairs: dict[str, str] = {}
    if top_text:
        texts.append(top_text)
        lines = top_text.splitlines()
        if not title:
            title = _first_line(top_text)
        lines = [line for line in lines if _first_line(line) != title]
        _key_values(lines, pairs)
    for attachment in attachments:
        for part in ("pretext", "text"):
            value = _plain(str(attachment.get(part) or ""))
            if value:
                texts.append(value)
                _key_values(value.splitlines(), pairs)
        for field in attachment.get("fields") or []:
            if isinstance(field, dict) and field.get("title") and field.get("value"):
                key, value = _label_key(str(field["title"])), _plain(str(field["value"]))
                texts.append(f"{field['title']}: {value}")
                if key:
                    pairs.setdefault(key, value)
    if not title:
        fallbacks = (_first_line(_plain(str(a.get("fallback") or ""))) for a in attachments)
        title = next((f for f in fallbacks if f), "")
    if not title:
        return None
    color = next((str(a.get("color") or "").lower() for a in attachments if a.get("color")), "")
    return title, "\n".join(texts), pairs, color


def _alert(
    channel: str, ts: str, seen_at: str, message: JSON, content: tuple[str, str, dict[str, str], str]
) -> AlertIn:
    title, text, pairs, color = content
    head = _PREFIX.match(_LEADING_NOISE.sub("", title))
    labels = {k: v for k, v in pairs.items() if k not in _ANNOTATION_KEYS}
    annotations = {k: v for k, v in pairs.items() if k in _ANNOTATION_KEYS}
    if head:
        status = head["status"].lower()
        rest = " ".join(head["rest"].split())
        parens = _TRAILING_PARENS.match(rest)
        key = parens["group"] if parens and parens["group"] else rest
        group_key: str | None = f"slack:{channel}:{redact(key)}"
        if key:
            labels.setdefault("alertname", key.split()[0])
    else:
        said = labels.get("status", "").lower()
        resolved = said in ("resolved", "ok") or (not said and color in _RESOLVED_COLORS)
        status = "resolved" if resolved else "firing"
        key = " ".join(title.split())
        group_key = None
        labels.setdefault("alertname", key[:120])
    return AlertIn(
        source="slack",
        fingerprint=_fingerprint(channel, redact(key)),
        status=status,
        title=redact(title)[:300],
        text=redact(text),
        labels=redact_obj(labels),
        annotations=redact_obj(annotations),
        starts_at=_when(seen_at),
        group_key=group_key[:1024] if group_key else None,
        severity=labels.get("severity"),
        raw=redact_obj(message),
        slack_channel=channel,
        slack_ts=ts,
    )


def _fingerprint(channel: str, key: str) -> str:
    readable = f"slack:{channel}:{key}"
    if len(readable) <= _FINGERPRINT_MAX:
        return readable
    return f"slack:{channel}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _key_values(lines: list[str], into: dict[str, str]) -> None:
    """Collect `*Key:* value`, `key: value` and `key=value` pairs; the first value of a key wins."""
    for raw_line in lines:
        line = _BULLET.sub("", raw_line).replace("*", "").replace("`", "").strip()
        match = _KEY_VALUE_LINE.match(line)
        if match and _label_key(match["key"]) not in ("labels", "annotations"):
            into.setdefault(_label_key(match["key"]), match["value"].strip())
            continue
        for pair in _KEY_EQUALS.finditer(match["value"] if match else line):
            into.setdefault(_label_key(pair["key"]), pair["value"].strip("\"'"))


def _label_key(name: str) -> str:
    key = re.sub(r"[\s.-]+", "_", name.strip().strip("*_:").lower())
    return _KEY_ALIASES.get(key, key)


def _plain(text: str) -> str:
    """Slack's escaped mrkdwn as plain text: links show their label, entities are decoded."""
    text = _SLACK_LINK.sub(lambda m: m["label"] or m["target"], text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def _first_line(text: str) -> str:
    for line in text.splitlines():
        cleaned = _LEADING_NOISE.sub("", line).strip(" *_~`")
        if cleaned:
            return cleaned
    return ""


def _blocks_text(blocks: Any) -> str:
    """The readable text of header, section, context and rich_text blocks, one line per block."""
    lines: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("header", "section") and isinstance(block.get("text"), dict):
            lines.append(str(block["text"].get("text") or ""))
        if kind == "section":
            lines.extend(str(f.get("text") or "") for f in block.get("fields") or [] if isinstance(f, dict))
        if kind == "context":
            lines.extend(str(e.get("text") or "") for e in block.get("elements") or [] if isinstance(e, dict))
        if kind == "rich_text":
            lines.append(_rich_text(block.get("elements") or []))
    return _plain("\n".join(line for line in lines if line))


def _rich_text(elements: list[Any]) -> str:
    out: list[str] = []
    for element in elements:
        if not isinstance(element, dict):
            continue
        if element.get("type") in ("text", "link", "emoji", "user", "channel"):
            out.append(str(element.get("text") or element.get("url") or ""))
        elif isinstance(element.get("elements"), list):
            inner = _rich_text(element["elements"])
            out.append(inner + ("\n" if element.get("type") != "rich_text_section" else ""))
    return "".join(out)


def _when(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (TypeError, ValueError, OverflowError):
        return None
