"""Remove secrets from any text before it is stored, logged, posted to Slack or sent to Claude."""

from __future__ import annotations

import re
from typing import Any

MASK = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # user:password@ in URLs and connection strings (postgres://u:p@h, https://u:p@h)
    # (bounded and anchored at the start of a word, so a long run of letters cannot make it backtrack)
    (
        re.compile(
            r"(?<![a-zA-Z0-9+.-])(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^/\s:@]{1,256}:)[^@\s/]{1,512}(?=@)"
        ),
        r"\g<pre>" + MASK,
    ),
    # Slack tokens
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"), MASK),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{6,}"), MASK),
    # AWS access key ids and secret keys
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*)['\"]?[A-Za-z0-9/+=]{30,}['\"]?"), r"\g<1>" + MASK),
    # Anthropic / OpenAI style keys, GitHub tokens, JWTs
    (re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),
    # Authorization headers
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\g<1> " + MASK),
    # key=value / key: value where the key names a secret
    (
        re.compile(
            r"(?i)(?P<key>(?<![\w.-])[\w.-]{0,60}?"
            r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
            r"[\w.-]{0,60})"
            r"(?P<sep>\s*[=:]\s*)(?P<q>['\"]?)(?P<val>[^\s'\",;&]+)"
        ),
        r"\g<key>\g<sep>\g<q>" + MASK,
    ),
]


# Every pattern above needs one of these to match: text without any of them is returned at once (most
# label values, titles and log lines), so redacting a large delivery costs one search per string.
_CANDIDATE = re.compile(
    r"://|xox[abposre]-|xapp-|AKIA|ASIA|aws_secret|sk-|gh[pousr]_|eyJ|bearer|basic"
    r"|password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """Return `text` with every recognised secret replaced by [REDACTED]."""
    if not text or not _CANDIDATE.search(text):
        return text
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_obj(value: Any) -> Any:
    """Redact every string inside a JSON-like structure."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v) for v in value]
    return value
