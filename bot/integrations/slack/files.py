"""Attaching a file to a thread with `files_upload_v2` (files.getUploadURLExternal, the bytes POSTed to the
URL it gives, files.completeUploadExternal), once: the thread is read first, and a file of the same name
already there is taken as this one uploaded by an earlier try whose answer was lost.

Failures come back as `AttachFailed`: `final` when no retry will help (Slack refused: no files:write scope,
the bot not in the channel, uploads switched off), otherwise worth another try later (rate limit, 5xx,
connection errors, an upload URL that did not answer 200).
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.integrations.slack.outbox.failures import PERMANENT, TRANSPORT

# Slack errors for an upload that no retry fixes, with what to do about them where there is something
FINAL: dict[str, str] = {
    **dict.fromkeys(PERMANENT, ""),
    "missing_scope": "the Slack app needs the {needed} scope (add it and reinstall the app)",
    "not_in_channel": "invite the bot to the channel",
    "file_uploads_disabled": "the workspace has switched file uploads off",
    "file_uploads_except_images_disabled": "the workspace allows images only",
    "file_type_not_allowed": "the workspace does not allow this file type",
    "file_upload_size_restricted": "the workspace restricts the size of uploads",
    "not_allowed_token_type": "",
    "alt_txt_too_large": "",
    "missing_argument": "",
    "file_not_found": "",
}


@dataclass(frozen=True)
class Attachment:
    filename: str  # unique per thread: how a retry recognises the file
    title: str
    alt_txt: str
    data: bytes


class AttachFailed(Exception):
    """The file is not in the thread: `error` is Slack's answer (or the transport's), `hint` what to do."""

    def __init__(self, error: str, *, final: bool, hint: str = "") -> None:
        super().__init__(error)
        self.error, self.final, self.hint = error, final, hint


def find_in_thread(client: WebClient, channel: str, thread_ts: str, filename: str) -> str | None:
    """The id of a file named `filename` in the thread under `thread_ts`, if one is there."""
    cursor = None
    while True:
        page = client.conversations_replies(channel=channel, ts=thread_ts, limit=200, cursor=cursor)
        for message in page.get("messages") or []:
            for file in message.get("files") or []:
                if file.get("name") == filename:
                    return str(file.get("id"))
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            return None


def attach(client: WebClient, channel: str, thread_ts: str, attachment: Attachment) -> str:
    """Upload `attachment` into the thread under `thread_ts` in `channel` (an id) unless it is there already;
    its file id. AttachFailed when it could not be."""
    try:
        found = find_in_thread(client, channel, thread_ts, attachment.filename)
        if found:
            return found
        answer = client.files_upload_v2(
            channel=channel,
            thread_ts=thread_ts,
            file=attachment.data,
            filename=attachment.filename,
            title=attachment.title,
            alt_txt=attachment.alt_txt,
        )
    except SlackApiError as exc:
        status = exc.response.status_code
        error = str(exc.response.get("error") or f"http {status}")
        final = status < 500 and status != 429 and error in FINAL
        # Slack's missing_scope names the scope: files:write to upload, channels:history to read the thread
        needed = str(exc.response.get("needed") or "files:write")
        raise AttachFailed(error, final=final, hint=FINAL.get(error, "").format(needed=needed)) from exc
    except (SlackRequestError, *TRANSPORT) as exc:  # the upload URL refused the bytes, or no answer came
        raise AttachFailed(f"{type(exc).__name__}: {exc}", final=False) from exc
    return str((answer.get("file") or {}).get("id", ""))
