"""Files uploaded the way `files_upload_v2` does it: a file id and an upload URL reserved by
`files.getUploadURLExternal`, the bytes POSTed to that URL (on this server, no token), then
`files.completeUploadExternal` sharing the file into a channel or thread as a message with a `files` list.

The bytes are kept so a test can read back exactly what was uploaded (`FileStore.data`).
"""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.sandbox.slack.conventions import Failure
from bot.sandbox.slack.identity import BOT_USER_ID, JSON

MAX_ALT_TXT = 1000
MAX_FILE_SIZE = 1 << 30  # the SDK refuses more than 1 GiB before asking

_MIMETYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "svg": "image/svg+xml",
    "txt": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "pdf": "application/pdf",
}


class UploadRefused(Exception):
    """A POST to an upload URL that is not answered 200 (status and reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class StoredFile:
    """One file: reserved, then uploaded (`data`), then completed (title set, shared `shares`)."""

    id: str
    upload_id: str
    name: str
    length: int
    created: int
    alt_txt: str | None = None
    title: str | None = None
    data: bytes | None = None
    completed: bool = False
    shares: list[tuple[str, str]] = field(default_factory=list)  # (channel id, message ts)

    @property
    def filetype(self) -> str:
        return self.name.rsplit(".", 1)[-1].lower() if "." in self.name else "binary"

    def info(self, base_url: str) -> JSON:
        """The file object Slack shows in a message's `files` list and in API answers."""
        shown: JSON = {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title or self.name,
            "mimetype": _MIMETYPES.get(self.filetype, "application/octet-stream"),
            "filetype": self.filetype,
            "user": BOT_USER_ID,
            "size": len(self.data or b""),
            "is_public": bool(self.shares),
            "url_private": f"{base_url}/files-pri/{self.id}/{self.name}",
            "permalink": f"https://sandbox.slack.com/files/{BOT_USER_ID}/{self.id}/{self.name}",
            "channels": sorted({channel for channel, _ in self.shares}),
        }
        if self.alt_txt:
            shown["alt_txt"] = self.alt_txt
        return shown


class FileStore:
    """Every file by id and by upload URL; callers hold the workspace lock."""

    def __init__(self, next_serial: Callable[[], int]) -> None:
        self.files: dict[str, StoredFile] = {}
        self._by_upload: dict[str, str] = {}
        self._next_serial = next_serial
        self.base_url = ""  # this server's address, set once it listens: upload URLs point at it

    def reserve(self, name: str, length: int, alt_txt: str | None) -> StoredFile:
        """A new file id and the URL its bytes go to."""
        stored = StoredFile(
            id=f"F{self._next_serial():09d}",
            upload_id=secrets.token_urlsafe(12),
            name=name,
            length=length,
            created=int(time.time()),
            alt_txt=alt_txt,
        )
        self.files[stored.id] = stored
        self._by_upload[stored.upload_id] = stored.id
        return stored

    def upload_url(self, stored: StoredFile) -> str:
        return f"{self.base_url}/upload/v1/{stored.upload_id}"

    def receive(self, upload_id: str, body: bytes) -> StoredFile:
        """Keep the bytes POSTed to an upload URL; `UploadRefused` for an unknown or used URL."""
        file_id = self._by_upload.get(upload_id)
        stored = self.files.get(file_id or "")
        if stored is None:
            raise UploadRefused(404, "no such upload")
        if stored.completed:
            raise UploadRefused(410, "upload already completed")
        if not body:
            raise UploadRefused(400, "empty upload")
        stored.data = body
        return stored

    def completable(self, file_id: object) -> StoredFile:
        """A file whose bytes arrived and that was not completed before; `file_not_found` otherwise."""
        stored = self.files.get(str(file_id))
        if stored is None or stored.data is None or stored.completed:
            raise Failure("file_not_found")
        return stored

    def data(self, file_id: str) -> bytes:
        """The bytes uploaded for `file_id`; KeyError if none arrived."""
        stored = self.files[file_id]
        if stored.data is None:
            raise KeyError(file_id)
        return stored.data

    def shown(self) -> list[JSON]:
        """Every completed file as Slack shows it, oldest first."""
        return [copy.deepcopy(f.info(self.base_url)) for f in self.files.values() if f.completed]
