"""One small function per kind of outbox write, and the table from each kind to its function and to
the Web API method it calls (which the pacing and the holds are kept by)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from slack_sdk import WebClient

from bot.integrations.slack.outbox.failures import Skip
from bot.integrations.slack.outbox.lookup import find_earlier_post, metadata
from bot.integrations.slack.outbox.queue import Target
from bot.store.tables import OutboxMessage

UNSURE = "_unsure_since"  # payload key of older rows: wall time of a post attempt that may have reached Slack
Sent = tuple[str | None, str | None]  # the channel and ts of what Slack now shows, where there is one


def post(client: WebClient, row: OutboxMessage, to: Target) -> Sent:
    if not to.channel:
        raise Skip("no channel to post to")
    since = row.unsure_since if row.unsure_since is not None else row.payload.get(UNSURE)
    if since is not None:  # it may be in Slack already: look before posting again
        earlier = find_earlier_post(client, row.id, to.channel, to.thread_ts, float(since))
        if earlier:
            return to.channel, earlier["ts"]
    resp = client.chat_postMessage(
        channel=to.channel,
        text=row.payload.get("text", ""),
        blocks=row.payload.get("blocks"),
        thread_ts=to.thread_ts,
        metadata=metadata(row.id),
        unfurl_links=False,
        unfurl_media=False,
    )
    return resp.get("channel"), resp.get("ts")


def update(client: WebClient, row: OutboxMessage, to: Target) -> Sent:
    if not to.target_ts or not to.channel:
        raise Skip("the message to update was never delivered")
    p = row.payload
    resp = client.chat_update(
        channel=to.channel, ts=to.target_ts, text=p.get("text", ""), blocks=p.get("blocks", [])
    )
    return resp.get("channel"), resp.get("ts")


def ephemeral(client: WebClient, row: OutboxMessage, to: Target) -> Sent:
    p = row.payload
    client.chat_postEphemeral(
        channel=to.channel or "",
        user=p["user"],
        text=p.get("text", ""),
        blocks=p.get("blocks"),
        thread_ts=to.thread_ts,
    )
    return to.channel, None


def view(client: WebClient, row: OutboxMessage, to: Target) -> Sent:
    client.views_open(trigger_id=row.payload["trigger_id"], view=row.payload["view"])
    return None, None


def home(client: WebClient, row: OutboxMessage, to: Target) -> Sent:
    # a whole view replacing the last one: sending it twice shows the same
    client.views_publish(user_id=row.payload["user_id"], view=row.payload["view"])
    return None, None


def reaction(client: WebClient, row: OutboxMessage, to: Target) -> Sent:
    client.reactions_add(channel=to.channel or "", timestamp=to.target_ts or "", name=row.payload["name"])
    return to.channel, to.target_ts


@dataclass(frozen=True)
class Sender:
    method: str
    send: Callable[[WebClient, OutboxMessage, Target], Sent]


SENDERS: dict[str, Sender] = {
    "post": Sender("chat.postMessage", post),
    "update": Sender("chat.update", update),
    "ephemeral": Sender("chat.postEphemeral", ephemeral),
    "view": Sender("views.open", view),
    "home": Sender("views.publish", home),
    "reaction": Sender("reactions.add", reaction),
}
METHODS = {kind: sender.method for kind, sender in SENDERS.items()}


def method_of(row: OutboxMessage) -> str:
    """The Web API method a row calls (its kind, for a kind no sender knows)."""
    return METHODS.get(row.kind, row.kind)


def send(client: WebClient, row: OutboxMessage, to: Target) -> Sent:
    """Make the Web API call for one row (after a look-up, for a post that may be in Slack already)."""
    sender = SENDERS.get(row.kind)
    if sender is None:
        raise Skip(f"unknown outbox kind {row.kind}")
    return sender.send(client, row, to)
