"""Classification of alerts into the seven categories, and redaction of secrets."""

from __future__ import annotations

import pytest

from bot.core.classify import classify, target_of
from bot.core.models import AlertIn, Category
from bot.core.redact import redact, redact_obj
from bot.render import escape, render


def alert(title: str, **labels: str) -> AlertIn:
    return AlertIn(source="test", fingerprint="f", status="firing", title=title, labels=labels)


@pytest.mark.parametrize(
    ("title", "labels", "category"),
    [
        ("trainer OOMKilled", {}, Category.TRAINING_CRASH),
        ("pod exit code 137", {}, Category.TRAINING_CRASH),
        ("KubeJobFailed", {"reason": "BackoffLimitExceeded"}, Category.PIPELINE_STEP_FAILED),
        ("job hit DeadlineExceeded", {}, Category.ORCHESTRATION_TIMEOUT),
        ("MLflow connection refused", {}, Category.TRACKING_DISCONNECTED),
        ("model version FAILED_REGISTRATION", {}, Category.MODEL_REGISTRATION_FAILED),
        ("feature view churn is stale", {}, Category.FEATURE_STORE_ISSUE),
        ("ImportError: cannot import name", {}, Category.VERSION_INCOMPATIBILITY),
        ("disk is full", {}, Category.UNCLASSIFIED),
        ("alert", {"reason": "OOMKilled"}, Category.TRAINING_CRASH),
        ("register churn failed: RESOURCE_DOES_NOT_EXIST", {}, Category.MODEL_REGISTRATION_FAILED),
        ("connection refused to the tracking URI http://mlflow:5000", {}, Category.TRACKING_DISCONNECTED),
        ("stale feature view churn", {}, Category.FEATURE_STORE_ISSUE),
        ("pkg_resources.VersionConflict: numpy 1.24", {}, Category.VERSION_INCOMPATIBILITY),
        ("anything", {"category": "feature_store_issue"}, Category.FEATURE_STORE_ISSUE),
    ],
)
def test_alerts_are_classified_with_a_reason(title: str, labels: dict[str, str], category: Category) -> None:
    result = classify(alert(title, **labels))
    assert result.category is category
    assert result.reason


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://:S3cretPass@db:5432/f", "postgresql://:[REDACTED]@db:5432/f"),  # no user, a password
        ("postgresql://etl:S3cret@Pass@db/f", "postgresql://etl:[REDACTED]@db/f"),  # an @ left unescaped
        ("see http://mlflow:5000/#/runs and mail ops@example.com", None),  # a port is no password
    ],
)
def test_a_password_in_a_database_url_is_masked_whatever_surrounds_it(url: str, shown: str | None) -> None:
    assert redact(url) == (shown or url)


def test_the_target_comes_from_the_usual_label_names() -> None:
    target = target_of(
        {"namespace": "ml", "job_name": "train", "pod": "train-x", "job": "kube-state-metrics"}
    )
    assert (target.namespace, target.job, target.pod) == ("ml", "train", "train-x")


def test_a_log_line_with_a_token_a_password_url_and_an_aws_key_is_redacted() -> None:
    line = (
        "connect postgresql://etl:S3cretPass@db:5432/f token=ghp_abcdefghijklmnopqrstuvwxyz0123456789 "
        "key AKIAIOSFODNN7EXAMPLE slack xoxb-123456-abcdef"
    )
    cleaned = redact(line)
    for secret in (
        "S3cretPass",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-123456",
    ):
        assert secret not in cleaned
    assert cleaned.count("[REDACTED]") == 4
    assert redact_obj({"a": [line]})["a"][0] == cleaned


def test_alert_text_cannot_ping_anyone_fake_a_link_reorder_or_reformat_a_message() -> None:
    assert escape("<!channel> see <http://evil|docs>") == "&lt;!channel&gt; see &lt;http://evil|docs&gt;"
    assert (
        escape("ask <@U123ABC> and <!subteam^S0COORD>") == "ask &lt;@U123ABC&gt; and &lt;!subteam^S0COORD&gt;"
    )
    assert escape("@here and @Channel now") == "@\u2060here and @\u2060Channel now"  # no broadcast
    assert escape("nul\x00 bell\x07 rtl\u202eevil\u2066x") == "nul bell rtlevilx"
    fenced = escape("```\nrm -rf /")
    assert "```" not in fenced and fenced.count("`") == 3  # an unbalanced fence cannot swallow the rest
    assert escape("line one\n\ttabbed") == "line one\n\ttabbed"
    from bot.services.readable import Line

    hostile = [Line("❌", "Pod logs", "<!channel> <http://evil|docs>")]
    text = render(
        "l1_report",
        error="<!here>",
        checks=hostile,
        more_checks=None,
        attempted="<@U1>",
        attempts=[],
        more_attempts=None,
        action="b",
        result="c",
    )
    assert "<!here>" not in text and "<!channel>" not in text and "<http://evil" not in text


def test_intake_cleans_and_redacts_every_string_keys_included() -> None:
    from bot.core.untrusted import scrub

    value = {"pass\x00word=hunter2": ["token: xoxb-1234567", {"k": "a\ud800b"}], "n": 3}
    assert scrub(value) == {"password=[REDACTED]": ["token: [REDACTED]", {"k": "a\\ud800b"}], "n": 3}


def test_rules_from_app_yaml_are_tried_before_the_built_in_ones() -> None:
    from bot.core.classify import with_custom

    rules = with_custom([(Category.FEATURE_STORE_ISSUE, r"churn_features.*late", "churn table")])
    result = classify(alert("job failed: churn_features arrived late"), rules)
    assert result.category is Category.FEATURE_STORE_ISSUE
    assert result.reason.startswith("churn table:")
    assert classify(alert("job failed"), rules).category is Category.PIPELINE_STEP_FAILED


def test_redaction_keeps_digests_and_long_words_that_only_look_like_keys() -> None:
    from bot.core.redact import redact

    kept = [
        "commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 deployed",  # a git SHA: hex, one case
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d28a60",
        "FeatureStoreMaterializationJobFailedAlert fired",  # a long word without digits
        "ünïcode text with ａ full-width letter and no secret",
    ]
    for text in kept:
        assert redact(text) == text
    assert redact("key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY end") == "key [REDACTED] end"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("google AIzaSyA1234567890abcdefghijklmnopqrstuvw end", "google [REDACTED] end"),
        ("hf hf_abcdefghijklmnopqrstuvwxyzABCDEFGH end", "hf [REDACTED] end"),
        ("gl glpat-abcdefghij1234567890 end", "gl [REDACTED] end"),
        ("stripe sk_live_51Habcdefghijklmnop end", "stripe [REDACTED] end"),
        ("npm npm_abcdefghijklmnopqrstuvwxyz0123456789 end", "npm [REDACTED] end"),
        ("db dapi0123456789abcdef0123456789abcdef end", "db [REDACTED] end"),
        ("DB_PASS=Hunter2Plain and PGPASS: s3cr3t", "DB_PASS=[REDACTED] and PGPASS: [REDACTED]"),
        ("mysql --password Sup3rSecret --user x", "mysql --password [REDACTED] --user x"),
        ("run --token=abc123xyz", "run --token=[REDACTED]"),
        ("the password is Hunter2 now", "the password is [REDACTED] now"),
        ("--password 'my secret' x", "--password [REDACTED] x"),
        ("API_TOKENS=s3cr3tValue", "API_TOKENS=[REDACTED]"),
        ('"refresh_tokens": "abcDEF123ghi"', '"refresh_tokens": "[REDACTED]"'),
        ("pass=abc", "pass=[REDACTED]"),
        ("API_TOKENS=tok_live_abc123,tok_live_def456 set", "API_TOKENS=[REDACTED] set"),
        ("password=a1, user=b", "password=[REDACTED], user=b"),
    ],
)
def test_more_vendors_keys_and_passwords_in_prose_or_flags_are_redacted(text: str, redacted: str) -> None:
    from bot.core.redact import redact

    assert redact(text) == redacted


@pytest.mark.parametrize(
    "text",
    [
        "the password is wrong",
        "password authentication failed for user ml",
        "bypass_cache=true compass=north",
        "usage.input_tokens: 5 should be at least 0",
        "token_count: 4096 and max_tokens=2048",
        "passed: 120, pass_rate=0.95, BYPASS_CACHE=1",
        "access-token failed in single-pass mode for a non-secret value",
    ],
)
def test_words_near_secret_names_that_are_no_secret_are_kept(text: str) -> None:
    from bot.core.redact import redact

    assert redact(text) == text
