"""Remove secrets from any text before it is stored, logged, posted to Slack or sent to Claude."""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

MASK = "[REDACTED]"


def _a_count(match: re.Match[str]) -> bool:
    """A number of tokens (`input_tokens: 5`, `token_count=4096`), not a token."""
    key = match.group("key").strip("'\"").lower()
    return match.group("val").isdigit() and (key.endswith("tokens") or key.endswith("token_count"))


def _mixed(match: re.Match[str]) -> str:
    """MASK for a run that looks random (upper, lower and digits), else the run (a word, a hex digest)."""
    run = match.group(0)
    random = any(c.isupper() for c in run) and any(c.islower() for c in run) and any(c.isdigit() for c in run)
    return MASK if random else run


_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # user:password@ in URLs and connection strings (postgres://u:p@h, postgres://:p@h; a password with an
    # unescaped @ is masked up to the host's @)
    # (bounded and anchored at the start of a word, so a long run of letters cannot make it backtrack)
    (
        re.compile(
            r"(?<![a-zA-Z0-9+.-])(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^/\s:@]{0,256}:)[^\s/]{1,512}(?=@)"
        ),
        r"\g<pre>" + MASK,
    ),
    # PEM private keys, header to footer (or to the end of a cut-off text)
    (
        re.compile(
            r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----.*?(?:-----END [A-Z ]{0,40}PRIVATE KEY-----|\Z)", re.S
        ),
        MASK,
    ),
    # Slack tokens, even glued to a word before them
    (re.compile(r"xox[abposre]-[A-Za-z0-9-]{6,}"), MASK),
    (re.compile(r"xapp-[A-Za-z0-9-]{6,}"), MASK),
    # Slack incoming webhooks and workflow triggers: the path is the secret
    (
        re.compile(r"(?i)(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]{8,}"),
        r"\g<1>" + MASK,
    ),
    # AWS access key ids and secret keys
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"(?i)(aws_secret_access_key\s*[=:]\s*)['\"]?[A-Za-z0-9/+=]{30,}['\"]?"), r"\g<1>" + MASK),
    # a bare AWS secret key: 40 characters of base64 mixing upper and lower case and digits
    (re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"), _mixed),
    # Anthropic / OpenAI style keys, GitHub tokens, JWTs
    (re.compile(r"\bsk-(?:ant-)?[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),
    # other vendors' keys and tokens: Google API keys, Hugging Face, GitLab, Stripe, npm, Databricks
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), MASK),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), MASK),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), MASK),
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), MASK),
    (re.compile(r"\bnpm_[A-Za-z0-9]{36}"), MASK),
    (re.compile(r"\bdapi[0-9a-f]{32}(?:-\d+)?"), MASK),
    # a secret given as a command-line flag: --password X, --token=X
    (
        re.compile(
            r"(?i)((?<!\S)--?(?:password|passwd|pass|token|secret|api[_-]?key)(?:\s+|=))(?!-)"
            r"(?:'[^']{0,200}'|\"[^\"]{0,200}\"|\S+)"
        ),
        r"\g<1>" + MASK,
    ),
    # "the password is Hunter2": only a value that looks made up (a digit or a symbol in it)
    (
        re.compile(
            r"(?i)\b((?:password|passphrase|passwd)\s+(?:is|was)\s+)(?=\S*[\d\W])(?!\W*\s)[^\s,;]{4,}"
        ),
        r"\g<1>" + MASK,
    ),
    # a variable named like DB_PASS, PGPASS or pass: the key ends in "pass" (not passed, pass_rate, BYPASS)
    (
        re.compile(
            r"(?i)(?P<key>(?<![\w.-])(?:[\w.-]{0,60}[_.-]|(?-i:PG))?pass['\"]?)"
            r"(?P<sep>\s*[=:]\s*)(?P<q>['\"]?)(?P<val>[^\s'\",;&]+(?:,[^\s'\",;&]+)*)"
        ),
        r"\g<key>\g<sep>\g<q>" + MASK,
    ),
    # Authorization headers
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\g<1> " + MASK),
    # key=value / key: value where the key names a secret
    (
        re.compile(
            r"(?i)(?P<key>(?<![\w.-])[\w.-]{0,60}?"
            r"(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key"
            r"|credentials?)"
            r"[\w.-]{0,60}['\"]?)"  # a JSON or quoted key ends in its quote
            # mrkdwn may wrap the key ("*api_token:* value", as Alertmanager's Slack posts write labels)
            r"(?P<sep>\s*(?:[=:]|%3[dDaA])[*_]{0,2}\s*)(?P<q>['\"]?)(?P<val>[^\s'\",;&]+(?:,[^\s'\",;&]+)*)"
        ),
        lambda m: m.group(0) if _a_count(m) else m.group("key") + m.group("sep") + m.group("q") + MASK,
    ),
]


# Every pattern above needs one of these to match: text without any of them is returned at once (most
# label values, titles and log lines), so redacting a large delivery costs one search per string.
_CANDIDATE = re.compile(
    r"://|xox[abposre]-|xapp-|AKIA|ASIA|aws_secret|sk-|gh[pousr]_|eyJ|bearer|basic|PRIVATE KEY|hooks\.slack"
    r"|AIza|hf_|glpat-|k_live_|k_test_|npm_|dapi|pass"
    r"|password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential"
    r"|[A-Za-z0-9/+]{40}",
    re.IGNORECASE,
)
# Characters that hide a secret from the patterns without changing how it reads: zero-width ones.
_INVISIBLE = re.compile(r"[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_known: re.Pattern[str] | None = None  # the values of this process's own secrets (remember_secrets)
_known_values: set[str] = set()
_known_lock = threading.Lock()
generation = 0  # changes when secrets are remembered: caches of redacted text key on it


_SECRET_NAME = re.compile(
    r"(?i)password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential"
)


def names_a_secret(key: str) -> bool:
    """Whether a field named `key` holds a secret (`db_password`, `api_token`): its value is masked whole."""
    return _SECRET_NAME.search(key) is not None


def remember_secrets(values: Iterable[str | None]) -> None:
    """Redact these exact values wherever they appear from now on (the bot's own tokens and secrets, which
    have no recognisable shape: a signing secret is 32 hex digits). Values under 8 characters are not
    worth it and would mask ordinary words."""
    global _known, generation
    with _known_lock:
        new = {v for v in values if v and len(v) >= 8} - _known_values
        if not new:
            return
        _known_values.update(new)
        ordered = sorted(_known_values, key=len, reverse=True)
        _known = re.compile("|".join(re.escape(v) for v in ordered))
        generation += 1


def redact(text: str) -> str:
    """Return `text` with every recognised secret replaced by [REDACTED].

    Text that only shows a secret once it is normalised (full-width letters, a zero-width space inside a
    key) is returned normalised (NFKC, invisible characters out) and redacted."""
    if not text:
        return text
    redacted = _redact_once(text)
    if not text.isascii():
        plain = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
        if plain != text:
            revealed = _redact_once(plain)
            if revealed != plain:
                return revealed
    return redacted


def _redact_once(text: str) -> str:
    known = _known
    return _redact_shapes(known.sub(MASK, text) if known is not None else text)


def _redact_shapes(text: str) -> str:
    if not _CANDIDATE.search(text):
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
