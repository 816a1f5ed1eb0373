"""Odd headers and bodies on /slack/events and the webhooks: a non-numeric or huge request timestamp,
missing, empty or duplicated signature headers, non-ASCII header bytes, odd content types, NUL bytes,
invalid UTF-8 and deep JSON nesting. Never a 5xx or a traceback; a request Slack did not sign (with the
one signing secret, within 5 minutes) gets 401; the bot keeps serving."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.sandbox.slack_driver import FORM, Response
from bot.sandbox.world import SIGNING_SECRET, WEBHOOK_TOKEN, SandboxWorld
from tests.security.helpers import (
    FUZZ_CONFIG,
    Crashes,
    assert_no_server_error,
    assert_refusal_names_the_problem,
    assert_still_serving,
    crash_log,
    examples,
    note_status,
    row_counts,
    send,
)
from tests.security.strategies import deep_nesting, odd_bodies

HELP = urlencode(
    {
        "command": "/escalation",
        "text": "help",
        "user_id": "U0OUTSIDE",
        "channel_id": "C0000000001",
        "team_id": "T0SANDBOX",
        "trigger_id": "1.2.3",
        "response_url": "http://127.0.0.1:9/response",
    }
).encode()


def sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Slack's v0 signature of `body` at `timestamp` (the header's exact text)."""
    base = b"v0:" + timestamp.encode("latin-1") + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def now() -> str:
    return str(int(time.time()))


def fresh(timestamp: str) -> bool:
    """Whether a server reading the header as an integer would find it within 5 minutes of now."""
    try:
        return abs(time.time() - int(timestamp)) <= 300
    except ValueError:
        return False


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[SandboxWorld, Crashes]]:
    with SandboxWorld(config=FUZZ_CONFIG) as w, crash_log() as crashes:
        yield w, crashes


def post_slack(world: SandboxWorld, body: bytes, headers: list[tuple[str, str | bytes]]) -> Response:
    return send(world, "/slack/events", body, headers)


def check(world: SandboxWorld, crashes: Crashes, mark: int, response: Response, what: str) -> None:
    note_status(response)
    assert_no_server_error(response, what)
    crashed = crashes.since(mark)
    assert not crashed, f"{what}: the bot logged a crash: {crashed[-1]}"
    assert_still_serving(world)
    if 400 <= response.status < 500:
        assert_refusal_names_the_problem(response, what)


# ---- X-Slack-Request-Timestamp ------------------------------------------------------------------------

latin1_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=24)
timestamps = st.one_of(
    latin1_text,
    st.integers().map(str),
    st.sampled_from(["", " ", "abc", "1e9", "0x10", "+", "-0", "9" * 40, "-" + "9" * 40, "1.5", "NaN"]),
    st.integers(-3600, 3600).map(lambda d: str(int(time.time()) + d)),
    st.integers(-299, 299).map(lambda d: f" {int(time.time()) + d} "),
    st.just("１７６４００００００"),  # full-width digits: int() reads them, latin-1 cannot carry them
)


@settings(max_examples=examples(100))
@given(timestamp=timestamps, signed_right=st.booleans())
def test_any_request_timestamp_is_refused_with_401_unless_fresh_and_signed(
    world: tuple[SandboxWorld, Crashes], timestamp: str, signed_right: bool
) -> None:
    w, crashes = world
    mark = len(crashes)
    header = timestamp.encode("utf-8")  # what goes on the wire; the server reads it as latin-1
    on_server = header.decode("latin-1")
    signature = sign(HELP, on_server) if signed_right else sign(HELP, on_server, "another-secret")
    headers: list[tuple[str, str | bytes]] = [
        ("Content-Type", FORM),
        ("X-Slack-Request-Timestamp", header),
        ("X-Slack-Signature", signature),
    ]

    response = post_slack(w, HELP, headers)

    check(w, crashes, mark, response, f"X-Slack-Request-Timestamp: {header!r}, signed right: {signed_right}")
    if signed_right and fresh(on_server) and on_server.strip() == on_server:
        assert response.status == 200, f"{header!r}: {response.status} {response.text}"
    elif not (signed_right and fresh(on_server)):
        assert response.status == 401, (
            f"{header!r} signed right: {signed_right}: {response.status} {response.text}"
        )


# ---- X-Slack-Signature --------------------------------------------------------------------------------

signatures = st.one_of(
    latin1_text,
    st.sampled_from(["", "v0=", "v1=" + "0" * 64, "v0=" + "0" * 64, "V0=" + "a" * 64, "v0=é", "v0=\xff" * 3]),
    # control characters other than tab cannot be in an HTTP header value at all (RFC 9110 field-value):
    # the HTTP server refuses the request, or drops the connection, before the bot sees it
    st.binary(max_size=70).filter(lambda b: all(c == 0x09 or (c >= 0x20 and c != 0x7F) for c in b)),
)


@settings(max_examples=examples(80))
@given(signature=signatures)
def test_any_wrong_signature_header_is_refused_with_401(
    world: tuple[SandboxWorld, Crashes], signature: str | bytes
) -> None:
    w, crashes = world
    mark = len(crashes)
    headers: list[tuple[str, str | bytes]] = [
        ("Content-Type", FORM),
        ("X-Slack-Request-Timestamp", now()),
        ("X-Slack-Signature", signature if isinstance(signature, bytes) else signature.encode("latin-1")),
    ]

    response = post_slack(w, HELP, headers)

    check(w, crashes, mark, response, f"X-Slack-Signature: {signature!r}")
    assert response.status == 401, f"{signature!r}: {response.status} {response.text}"


def _headers(case: str) -> list[tuple[str, str | bytes]]:
    ts, stale = now(), str(int(time.time()) - 3600)
    right, wrong = sign(HELP, ts), sign(HELP, ts, "another-secret")
    form: list[tuple[str, str | bytes]] = [("Content-Type", FORM)]
    return (
        form
        + {
            "no_headers": [],
            "no_signature": [("X-Slack-Request-Timestamp", ts)],
            "no_timestamp": [("X-Slack-Signature", right)],
            "empty_signature": [("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", "")],
            "empty_timestamp": [("X-Slack-Request-Timestamp", ""), ("X-Slack-Signature", right)],
            "wrong_then_right_signature": [
                ("X-Slack-Request-Timestamp", ts),
                ("X-Slack-Signature", wrong),
                ("X-Slack-Signature", right),
            ],
            "right_then_wrong_signature": [
                ("X-Slack-Request-Timestamp", ts),
                ("X-Slack-Signature", right),
                ("X-Slack-Signature", wrong),
            ],
            "stale_then_fresh_timestamp": [
                ("X-Slack-Request-Timestamp", stale),
                ("X-Slack-Request-Timestamp", ts),
                ("X-Slack-Signature", right),
            ],
            "fresh_then_stale_timestamp": [
                ("X-Slack-Request-Timestamp", ts),
                ("X-Slack-Request-Timestamp", stale),
                ("X-Slack-Signature", sign(HELP, stale)),
            ],
            "signature_of_other_timestamp": [
                ("X-Slack-Request-Timestamp", ts),
                ("X-Slack-Signature", sign(HELP, stale)),
            ],
            "huge_timestamp": [
                ("X-Slack-Request-Timestamp", "9" * 30),
                ("X-Slack-Signature", sign(HELP, "9" * 30)),
            ],
            "non_numeric_timestamp": [
                ("X-Slack-Request-Timestamp", "abc"),
                ("X-Slack-Signature", sign(HELP, "abc")),
            ],
            "float_timestamp": [
                ("X-Slack-Request-Timestamp", f"{time.time():.3f}"),
                ("X-Slack-Signature", right),
            ],
            "non_ascii_signature": [
                ("X-Slack-Request-Timestamp", ts),
                ("X-Slack-Signature", "v0=é".encode("latin-1")),
            ],
        }[case]
    )


@pytest.mark.parametrize(
    "case",
    [
        "no_headers",
        "no_signature",
        "no_timestamp",
        "empty_signature",
        "empty_timestamp",
        "wrong_then_right_signature",
        "right_then_wrong_signature",
        "stale_then_fresh_timestamp",
        "fresh_then_stale_timestamp",
        "signature_of_other_timestamp",
        "huge_timestamp",
        "non_numeric_timestamp",
        "float_timestamp",
        "non_ascii_signature",
    ],
)
def test_missing_empty_duplicated_or_odd_signature_headers_get_401(
    world: tuple[SandboxWorld, Crashes], case: str
) -> None:
    """Duplicated headers that disagree are refused too: Slack never sends two."""
    w, crashes = world
    mark = len(crashes)

    response = post_slack(w, HELP, _headers(case))

    check(w, crashes, mark, response, case)
    assert response.status == 401, f"{case}: {response.status} {response.text}"
    assert response.json().get("error"), response.text


# ---- content types and bodies, correctly signed -------------------------------------------------------

content_types = st.one_of(
    st.sampled_from(
        [
            FORM,
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=xyz",
            "application/x-www-form-urlencoded; charset=latin-1",
            "application/json; charset=utf-16",
            "",
            "*/*",
        ]
    ),
    latin1_text,
)
signed_bodies = st.one_of(
    odd_bodies,
    st.sampled_from(
        [
            b"payload=" + deep_nesting(100_000),
            b"payload=%7B%22type%22%3A%22block_actions%22",  # a cut-off payload
            b"payload=" + json.dumps({"type": "block_actions", "actions": "x"}).encode(),
            b"payload=" + json.dumps({"type": "view_submission", "view": [1]}).encode(),
            b"payload="
            + json.dumps({"type": "view_submission", "view": {"callback_id": "resolve_view"}}).encode(),
            b"payload=null",
            b"payload=%00",
            b"payload=%ff%fe",
            b'{"type":"event_callback","event":' + deep_nesting(100_000) + b"}",
            b'{"type":"event_callback","event_id":"Ev1","event":{"type":"message","text":"a\\u0000b"}}',
            b'{"type":"event_callback","event_id":"Ev2","event":"not an event"}',
            b'{"type":"url_verification","challenge":' + deep_nesting(10) + b"}",
            b"command=%2Fescalation&text=show+%00",
            b"command=%2Fescalation&text=show+%ff",
            b"command=%2Fescalate&text=" + b"%00" * 10,
            b"command=" + b"a" * 100,
            HELP.replace(b"help", b"show+99999999999999999999999"),
            HELP.replace(b"help", b"show+%C2%B2"),
        ]
    ),
)


@settings(max_examples=examples(100))
@given(content_type=content_types, body=signed_bodies)
@example(content_type="application/json", body=b"\x00")
def test_any_correctly_signed_body_and_content_type_never_gets_a_5xx(
    world: tuple[SandboxWorld, Crashes], content_type: str, body: bytes
) -> None:
    w, crashes = world
    mark = len(crashes)
    ts = now()
    headers: list[tuple[str, str | bytes]] = [
        ("Content-Type", content_type.encode("latin-1")),
        ("X-Slack-Request-Timestamp", ts),
        ("X-Slack-Signature", sign(body, ts)),
    ]

    response = post_slack(w, body, headers)

    check(w, crashes, mark, response, f"Content-Type {content_type!r}, body {body[:120]!r}")


# ---- webhooks: Authorization and content type ---------------------------------------------------------

AUTH_CASES: dict[str, list[tuple[str, str | bytes]]] = {
    "no_authorization": [],
    "empty": [("Authorization", "")],
    "basic": [("Authorization", "Basic " + WEBHOOK_TOKEN)],
    "lowercase_bearer": [("Authorization", "bearer " + WEBHOOK_TOKEN)],
    "token_prefix": [("Authorization", "Bearer " + WEBHOOK_TOKEN[:-1])],
    "latin1_bytes": [("Authorization", b"Bearer \xe9\xff")],
    "wrong_then_right": [("Authorization", "Bearer nope"), ("Authorization", "Bearer " + WEBHOOK_TOKEN)],
}


@pytest.mark.parametrize("path", ["/alerts/alertmanager", "/alerts/generic"])
@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_a_webhook_without_exactly_the_bearer_token_gets_401_and_stores_nothing(
    world: tuple[SandboxWorld, Crashes], case: str, path: str
) -> None:
    w, crashes = world
    mark, before = len(crashes), row_counts(w)
    body = json.dumps({"title": "Nightly job failed"}).encode()
    headers: list[tuple[str, str | bytes]] = [("Content-Type", "application/json"), *AUTH_CASES[case]]

    response = send(w, path, body, headers)

    check(w, crashes, mark, response, f"{case} on {path}")
    assert response.status in (400, 401), f"{case}: {response.status} {response.text}"
    assert row_counts(w) == before


@settings(max_examples=examples(40))
@given(content_type=content_types, path=st.sampled_from(["/alerts/alertmanager", "/alerts/generic"]))
def test_a_webhook_with_any_content_type_never_gets_a_5xx(
    world: tuple[SandboxWorld, Crashes], content_type: str, path: str
) -> None:
    w, crashes = world
    mark = len(crashes)
    headers: list[tuple[str, str | bytes]] = [
        ("Content-Type", content_type.encode("latin-1")),
        ("Authorization", "Bearer " + WEBHOOK_TOKEN),
    ]

    response = send(w, path, b'{"title": "Nightly job failed"}', headers)

    check(w, crashes, mark, response, f"Content-Type {content_type!r} on {path}")
