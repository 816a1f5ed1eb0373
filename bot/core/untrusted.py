"""Text from outside (alerts, logs, notes people type) is data: cleaned and redacted once when it comes
in, and neutralised for Slack's mrkdwn wherever it is shown.

`scrub` is for intake: it writes out what no stored text should hold as it came (control characters,
lone surrogates, direction overrides) the way a Python string literal spells it (`\\x00`, `\\x1b`,
`\\u202e`), so two alerts that differ only there stay two alerts and a reader sees what was sent, and it
redacts secrets, in keys and values alike. Names and one-line values (labels, fingerprints) write out
line breaks too; free text (annotations, descriptions, notes) keeps newline and tab, and a Windows line
end is a line break. `clean` drops the same control characters: for what a check read (logs, events),
never compared with other inputs. `neutralise` is for rendering: it escapes mrkdwn's control characters,
so `<@U…>`, `<!here>`, `<!subteam^…>` and links stay text, takes out direction overrides, breaks code
fences that would swallow the rest of a message, and keeps a plain `@here` from being read as a
broadcast."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

from bot.core import redact as redaction
from bot.core.models import AlertIn
from bot.core.redact import MASK, names_a_secret, redact

# C0 controls except tab, newline and carriage return; DEL; C1 controls.
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# Bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the byte-order mark.
_BIDI_CHARS = r"\u202a-\u202e\u2066-\u2069\ufeff"
_SURROGATES = r"\ud800-\udfff"
_CONTROL = re.compile(rf"[{_CONTROLS}]")
_BIDI = re.compile(rf"[{_BIDI_CHARS}]")
_SURROGATE = re.compile(rf"[{_SURROGATES}]")
# What intake writes out: before parsing (where a line break's meaning is not known yet), in free text
# (a lone carriage return rewrites a line on a terminal), and in a name or one-line value.
_UNPARSED = re.compile(rf"[{_CONTROLS}{_SURROGATES}]")
_HIDDEN = re.compile(rf"[{_CONTROLS}{_SURROGATES}{_BIDI_CHARS}]")
_IN_TEXT = re.compile(rf"[{_CONTROLS}{_SURROGATES}{_BIDI_CHARS}\r]")
_IN_LINE = re.compile(rf"[{_CONTROLS}{_SURROGATES}{_BIDI_CHARS}\r\n]")
_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
WORD_JOINER = "\u2060"
FINGERPRINT_MAX = 255  # the column's size


def clean(text: str) -> str:
    """`text` without control characters and lone surrogates (which PostgreSQL and UTF-8 cannot hold)."""
    text = _CONTROL.sub("", text)
    if _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def _spelled(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def _write_out(text: str, unsafe: re.Pattern[str]) -> str:
    if not unsafe.search(text):
        return text
    if _HIDDEN.search(text):
        plain = _HIDDEN.sub("", text)
        masked = redact(plain)
        if masked != plain:  # a secret these characters split (or sit beside) is masked, and they go
            text = masked
    return unsafe.sub(_spelled, text)


def visible(text: str, *, one_line: bool = False) -> str:
    """`text` with control characters, lone surrogates and direction overrides written out (`\\x00`,
    `\\x1b`, `\\u202e`), line breaks too when `one_line`; tab is kept, and in free text newline."""
    if one_line:
        return _write_out(text, _IN_LINE)
    return _write_out(text.replace("\r\n", "\n") if "\r" in text else text, _IN_TEXT)


def visible_json(value: Any) -> Any:
    """Every string of a JSON value (keys included) with control characters and lone surrogates written
    out, before any parser looks at it; line breaks are left to `scrub`, which knows each field."""
    if isinstance(value, str):
        return _write_out(value, _UNPARSED)
    if isinstance(value, dict):
        return {_write_out(str(k), _UNPARSED): visible_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [visible_json(v) for v in value]
    return value


@lru_cache(maxsize=8192)
def _scrub_short(text: str, one_line: bool, _generation: int) -> str:  # new known secrets: a new key
    return redact(visible(text, one_line=one_line))


# How a JSON text can spell what `clean` takes out: the character itself (DEL and C1 are legal raw in a
# JSON string; C0 is not), a \b or \f escape, or a \u escape of a control character or a surrogate.
_JSON_UNCLEAN = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]|\\[bf]|\\u(?:00[01]|007|00[89]|d[89a-f])",
    re.IGNORECASE,
)
_JSON_ESCAPE = re.compile(r"\\[bfu]")


def needs_cleaning(json_text: str) -> bool:
    """Whether a JSON text (valid UTF-8, decoded) may parse to a string `visible_json` would change; when
    not, `visible_json` of it is the parsed value itself, and the walk over every string can be skipped. An
    escaped backslash before a `b`, `f` or `u00…` is a false alarm, which only costs the walk."""
    if json_text.isascii():  # raw, only DEL can be in a string; C0 is refused by the parser
        if "\x7f" in json_text:
            return True
        return _JSON_ESCAPE.search(json_text) is not None and _JSON_UNCLEAN.search(json_text) is not None
    return _JSON_UNCLEAN.search(json_text) is not None


def clean_json(value: Any) -> Any:
    """`clean` every string in a JSON value, keys included (before any parser looks at it)."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {clean(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value


def scrub(value: Any, *, one_line: bool = False) -> Any:
    """Every string in a JSON-like value `visible` and redacted; keys are names, written on one line, and
    strings are free text unless `one_line`. Other values are kept."""
    if isinstance(value, str):
        # label names and values repeat across the alerts of a storm: short strings are remembered
        if len(value) <= 256:
            return _scrub_short(value, one_line, redaction.generation)
        return redact(visible(value, one_line=one_line))
    if isinstance(value, dict):
        # a value under a name like `db_password` is a secret whatever its shape
        return {
            scrub(str(k), one_line=True): MASK
            if isinstance(v, str) and v and names_a_secret(str(k))
            else scrub(v, one_line=one_line)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v, one_line=one_line) for v in value]
    return value


def neutralise(text: str) -> str:
    """`text` safe to show inside a mrkdwn message: it cannot mention, link, reorder or reformat."""
    text = _BIDI.sub("", clean(text))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = text.replace("```", "`" + WORD_JOINER + "`" + WORD_JOINER + "`")
    return _BROADCAST.sub(lambda m: "@" + WORD_JOINER + m.group(1), text)


_MENTION_TOKEN = re.compile(r"<[@!#][^<>]*>")  # <@U1>, <!channel>, <#C1>, <!subteam^S1>
_LINK_TOKEN = re.compile(r"<(?:https?|ftps?|mailto|slack):[^<>|]*(?:\|([^<>]*))?>", re.IGNORECASE)
_ADDRESS = re.compile(
    r"(?P<web>\b(?:(?:https?|ftps?)://|www\.|mailto:)\S+)"  # a web link: removed
    r"|(?P<uri>\b[a-z][a-z0-9+.-]{1,15}://\S+)"  # s3://, gs://, hdfs://: kept, shown as code
    r"|(?P<mail>\b[\w.+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[a-z]{2,24}\b)"
    r"|(?P<host>\b(?:[A-Za-z0-9-]{1,63}\.)+[a-z]{2,24}\b(?:/\S*)?)",  # evil.example/login, train.py
    re.IGNORECASE,
)
_TRAILING = ".,;:!?'\")]"


def as_code(text: str, *, web_link: str | None = "[link removed]") -> str:
    """`text` with every address (an s3:// path, a host name, an e-mail address, a file name) shown as
    code, which Slack does not link; a web link is replaced by `web_link`, or shown as code too when it
    is None. Backticks of the text's own must be gone first, so none can pair with these."""

    def shown(match: re.Match[str]) -> str:
        found = match.group(0)
        if match.group("web") and web_link is not None:
            return web_link
        bare = found.rstrip(_TRAILING)  # a sentence's punctuation after an address is not part of it
        return f"`{bare}`{found[len(bare) :]}"

    return _ADDRESS.sub(shown, text)


def from_model(text: Any) -> str:
    """A language model's text as one plain line that shows it and nothing more: mentions and broadcasts
    gone, web links removed, any other address (an s3:// path, a host name, an e-mail address, a file
    name) shown as code so Slack links nothing, backticks of its own made quotes, secrets redacted.
    `<` and `>` stay (a version range reads `numpy>=1.26,<3`): rendering escapes them."""
    line = " ".join(str(scrub(str(text))).split()).replace("`", "'")
    for _ in range(4):  # a token assembled from pieces (<!chan<http://a|nel>>) is taken out on the next round
        before = line
        line = _LINK_TOKEN.sub(lambda m: m.group(1) or "[link removed]", _MENTION_TOKEN.sub("", line))
        line = _BROADCAST.sub(r"\1", line)
        if line == before:
            break
    else:  # still changing: no angle bracket stays to build one with
        line = line.replace("<", " ").replace(">", " ")
    return " ".join(as_code(line).split())


def closed_code(text: str, limit: int) -> str:
    """`text` cut to `limit` characters never ends inside a code span: a cut that left a backtick open is
    closed, so what was shown as code (an address) cannot become a link."""
    if text.count("`") % 2 == 0:
        return text
    return (text[: limit - 1] if len(text) >= limit else text) + "`"


def depth(value: Any, limit: int) -> int:
    """How deeply `value` nests lists and objects, counting no further than `limit` + 1."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, level)
        if level > limit:
            return level
        children = item.values() if isinstance(item, dict) else item
        # only containers nest: the strings and numbers of a large delivery are not pushed one by one
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


KEY_MAX = 256  # a label or annotation name
LABEL_MAX = 2_048  # a label value: Prometheus label values are names and ids, not documents
TEXT_MAX = 16_384  # an annotation value, or any string of the raw payload
BODY_MAX = 65_536  # the alert's text


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how many more were cut: an alert is stored several
    times over (its delivery, its row, its raw payload, its incident), so one huge value costs that much."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters cut at intake]"


def _cut_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, dict):
        return {cut(k, KEY_MAX): _cut_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_strings(v, limit) for v in value]
    return value


def admit(alert: AlertIn) -> AlertIn:
    """An alert as it is stored: every string cleaned and redacted, every field within its column, and no
    value longer than its cap (LABEL_MAX, TEXT_MAX, BODY_MAX)."""
    fingerprint = scrub(alert.fingerprint, one_line=True)
    if len(fingerprint) > FINGERPRINT_MAX:  # kept stable and unique, but short enough to index
        fingerprint = f"{alert.source[:20]}:sha256:{hashlib.sha256(fingerprint.encode()).hexdigest()}"
    labels = scrub({str(k): str(v) for k, v in alert.labels.items()}, one_line=True)
    return replace(
        alert,
        source=scrub(alert.source, one_line=True)[:32],
        fingerprint=fingerprint,
        status=alert.status if alert.status in ("firing", "resolved") else "firing",
        title=scrub(alert.title),
        text=cut(scrub(alert.text), BODY_MAX),
        labels={cut(k, KEY_MAX): cut(v, LABEL_MAX) for k, v in labels.items()},
        annotations={cut(k, KEY_MAX): cut(str(v), TEXT_MAX) for k, v in scrub(alert.annotations).items()},
        group_key=scrub(alert.group_key, one_line=True)[:1024] if alert.group_key else None,
        severity=scrub(alert.severity, one_line=True)[:32] if alert.severity else None,
        raw=_cut_strings(scrub(alert.raw), TEXT_MAX),
        category_reason=scrub(alert.category_reason),
    )
