"""Files uploaded into the local Slack workspace the way `files_upload_v2` does it (an upload URL, the bytes
POSTed there, the upload completed into a channel or thread), through the real slack_sdk client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.error import HTTPError

import pytest
from slack_sdk import WebClient

from bot.sandbox.slack_emulator import SlackEmulator
from tests.test_slack_emulator import error_of

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def emu() -> Iterator[SlackEmulator]:
    with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu: SlackEmulator) -> WebClient:
    return WebClient(token=emu.bot_token, base_url=emu.api_url, retry_handlers=[])


def test_a_chart_uploaded_into_a_channel_is_shared_as_a_message_and_its_bytes_read_back(
    emu: SlackEmulator, client: WebClient
) -> None:
    channel = emu.channel_id("#tech-leads")
    answer = client.files_upload_v2(
        channel=channel,
        file=PNG,
        filename="digest.png",
        title="Weekly digest",
        alt_txt="Levels against their targets",
        initial_comment="This week's chart",
    )

    assert [c.method for c in emu.calls] == [
        "files.getUploadURLExternal",
        "upload_url",
        "files.completeUploadExternal",
    ]
    assert emu.calls_to("upload_url")[0].args["size"] == len(PNG)
    file = answer["file"]
    assert (file["name"], file["title"], file["mimetype"], file["size"]) == (
        "digest.png",
        "Weekly digest",
        "image/png",
        len(PNG),
    )
    assert emu.file_data(file["id"]) == PNG
    [shared] = client.conversations_history(channel=channel)["messages"]
    assert shared["text"] == "This week's chart"
    assert shared["bot_id"] == "BBOT"
    [shown] = shared["files"]
    assert (shown["id"], shown["alt_txt"], shown["channels"]) == (
        file["id"],
        "Levels against their targets",
        [channel],
    )
    assert emu.files() == [answer["file"]]


def test_a_file_uploaded_into_a_thread_is_a_reply_there_and_not_in_the_channel(
    emu: SlackEmulator, client: WebClient
) -> None:
    parent = client.chat_postMessage(channel="#tech-leads", text="*Weekly escalation digest*")
    client.files_upload_v2(
        channel=parent["channel"], thread_ts=parent["ts"], file=PNG, filename="digest.png", title="Chart"
    )

    assert [m["ts"] for m in emu.messages("#tech-leads")] == [parent["ts"]]
    [reply] = client.conversations_replies(channel=parent["channel"], ts=parent["ts"])["messages"][1:]
    assert [f["name"] for f in reply["files"]] == ["digest.png"]
    assert emu.message("#tech-leads", parent["ts"])["reply_count"] == 1


def test_a_file_with_no_channel_stays_private(emu: SlackEmulator, client: WebClient) -> None:
    answer = client.files_upload_v2(file=PNG, filename="digest.png")

    assert answer["file"]["channels"] == [] and answer["file"]["is_public"] is False
    assert all(emu.messages(name) == [] for name in ("#tech-leads", "#ml-alerts"))


def test_sharing_needs_a_channel_id_with_the_bot_in_it(emu: SlackEmulator, client: WebClient) -> None:
    emu.leave("#tech-leads", "UBOT")

    def upload(channel: str) -> Callable[[], Any]:
        return lambda: client.files_upload_v2(channel=channel, file=PNG, filename="digest.png")

    assert error_of(upload(emu.channel_id("#tech-leads"))) == "not_in_channel"
    assert error_of(upload("#ml-alerts")) == "channel_not_found"  # a name is not taken, only an id
    assert error_of(upload("C404")) == "channel_not_found"
    assert emu.files() == [] and emu.messages("#tech-leads") == []


def test_an_empty_file_and_over_long_alt_text_are_refused_before_any_upload(
    emu: SlackEmulator, client: WebClient
) -> None:
    assert error_of(lambda: client.files_upload_v2(content=b"", filename="empty.png")) == "missing_argument"
    too_long = "x" * 1001
    refused = error_of(lambda: client.files_upload_v2(file=PNG, filename="a.png", alt_txt=too_long))
    assert refused == "alt_txt_too_large"
    assert emu.calls_to("upload_url") == []


def test_completing_needs_bytes_that_arrived_and_completes_a_file_once(
    emu: SlackEmulator, client: WebClient
) -> None:
    channel = emu.channel_id("#tech-leads")
    reserved = client.files_getUploadURLExternal(filename="digest.png", length=len(PNG))
    files = [{"id": reserved["file_id"], "title": "Chart"}]

    def complete() -> Any:
        return client.files_completeUploadExternal(files=files, channel_id=channel)

    assert error_of(complete) == "file_not_found"  # nothing was POSTed to the upload URL yet
    answer = client.files_upload_v2(channel=channel, file=PNG, filename="digest.png")
    again = [{"id": answer["file"]["id"], "title": "Chart"}]
    assert error_of(lambda: client.files_completeUploadExternal(files=again, channel_id=channel)) == (
        "file_not_found"
    )
    bad = error_of(lambda: client.files_completeUploadExternal(files=[{"title": "x"}], channel_id=channel))
    assert bad == "invalid_arguments"
    assert len(emu.messages("#tech-leads")) == 1


def test_a_thread_takes_one_channel_only(emu: SlackEmulator, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="#tech-leads", text="digest")
    both = [parent["channel"], emu.channel_id("#ml-alerts")]
    refused = error_of(
        lambda: client.files_upload_v2(channels=both, thread_ts=parent["ts"], file=PNG, filename="a.png")
    )
    assert refused == "invalid_arguments"
    lost = error_of(
        lambda: client.files_upload_v2(
            channel=parent["channel"], thread_ts="1.000001", file=PNG, filename="a.png"
        )
    )
    assert lost == "thread_not_found"
    assert emu.files() == []


def test_a_failed_upload_post_reaches_the_client_and_shares_nothing(
    emu: SlackEmulator, client: WebClient
) -> None:
    emu.fail_next("upload_url", status=500)

    # slack_sdk POSTs the bytes with urllib, which raises on any status but 200
    with pytest.raises(HTTPError) as refused:
        client.files_upload_v2(channel=emu.channel_id("#tech-leads"), file=PNG, filename="digest.png")
    assert refused.value.code == 500

    assert emu.calls_to("files.completeUploadExternal") == []
    assert emu.files() == [] and emu.messages("#tech-leads") == []
