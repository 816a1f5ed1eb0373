"""A bot in a pod: no KUBECONFIG, only the service account's token and CA and the KUBERNETES_SERVICE_HOST
and _PORT the kubelet sets. The loopback Kubernetes API serves HTTPS with a certificate made here for
127.0.0.1, as an API server does; a real bot process finds it, sends the token on every request and runs
its checks. Every call gives up after kubernetes.request_timeout."""

from __future__ import annotations

import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bot.config.integrations import KubernetesSettings
from bot.core.errors import RetryableError
from bot.integrations.kubernetes import connect
from bot.sandbox.kube_api import SandboxKubeAPI
from tests.kube_fixtures import NS
from tests.test_explain import write_alert, write_config

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "eyJhbGciOiJSUzI1NiJ9.sandbox-service-account-token"
# the bot's CLI, with the service-account directory pointed at the test's (the only change from `run`)
WRAPPER = (
    "import sys; from pathlib import Path; import bot.integrations.kubernetes as kube; "
    "kube.SERVICE_ACCOUNT_DIR = Path(sys.argv[1]); from bot.cli import main; sys.exit(main(sys.argv[2:]))"
)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A CA certificate for the IP 127.0.0.1 that signs itself, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    now = datetime.now(UTC)
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def account(tmp_path: Path) -> Path:
    """The service-account directory the kubelet mounts: token, ca.crt, namespace."""
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    cert_file, _ = self_signed(tmp_path)
    (folder / "token").write_text(TOKEN)
    (folder / "ca.crt").write_bytes(cert_file.read_bytes())
    (folder / "namespace").write_text("ml-platform")
    return folder


@pytest.fixture
def api_server(tmp_path: Path, account: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxKubeAPI]:
    """The loopback API over HTTPS, with a training Job OOM-killed at 2Gi; this process is "in a pod"."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    with SandboxKubeAPI(seed=7, tls=tls) as sandbox:
        sandbox.load_fixture("training_oom")
        monkeypatch.delenv("KUBECONFIG", raising=False)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", sandbox.url.rsplit(":", 1)[1])
        yield sandbox


def in_pod(account: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The bot's CLI in a process whose environment is a pod's: no KUBECONFIG, the service host and port."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", WRAPPER, str(account), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def bearer_tokens(sandbox: SandboxKubeAPI) -> set[str]:
    """The token each request carried (its Authorization: Bearer header; the scheme is case-insensitive)."""
    found = set()
    for request in sandbox.requests:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found.add(token if scheme.lower() == "bearer" else f"<no bearer token: {scheme!r}>")
    return found


def test_explain_in_a_pod_reads_the_cluster_over_https_with_the_service_account_token(
    api_server: SandboxKubeAPI, account: Path, tmp_path: Path
) -> None:
    result = in_pod(account, tmp_path, "explain", "--config", write_config(tmp_path), write_alert(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "was OOMKilled (exit 137) with memory limit 2Gi" in result.stdout
    assert any(r.path == f"/api/v1/namespaces/{NS}/pods" for r in api_server.requests)
    assert bearer_tokens(api_server) == {TOKEN}
    assert api_server.writes() == []
    assert "Traceback" not in result.stderr


def test_doctor_in_a_pod_names_the_service_account_reads_the_namespace_and_reviews_each_right(
    api_server: SandboxKubeAPI, account: Path, tmp_path: Path
) -> None:
    config = tmp_path / "app.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kubernetes": {"namespaces": [NS], "request_timeout": "5s"},
                "remediation": {"allowlist": ["rerun_job_with_more_memory"]},
            }
        )
    )
    result = in_pod(account, tmp_path, "doctor", "--config", str(config), "--json")

    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    kube = checks["Kubernetes"]
    assert kube["ok"] and "the pod's service account (namespace ml-platform)" in kube["detail"]
    assert api_server.url in kube["detail"] and api_server.url.startswith("https://")
    assert checks[f"Kubernetes namespace {NS}"] == {
        "name": f"Kubernetes namespace {NS}",
        "ok": True,
        "detail": "readable",
        "fix": "",
    }
    assert checks["Kubernetes permissions"]["ok"]
    asked = {(a["verb"], a["resource"], a.get("subresource")) for a in api_server.access.asked}
    assert {("create", "jobs", None), ("list", "pods", None), ("get", "pods", "log")} <= asked
    assert bearer_tokens(api_server) == {TOKEN}
    assert "Traceback" not in result.stderr


def test_each_call_gives_up_after_kubernetes_request_timeout_not_the_default(
    api_server: SandboxKubeAPI, account: Path
) -> None:
    found = connect(None, KubernetesSettings(request_timeout=timedelta(seconds=1)), account_dir=account)
    assert found.gateway is not None, found.problem
    api_server.hang("/pods")
    started = time.monotonic()
    try:
        with pytest.raises(RetryableError, match="LIST pods"):
            found.gateway.list_pods(NS)
        took = time.monotonic() - started
    finally:
        api_server.release_hangs()
        found.gateway.close()

    assert 0.9 <= took < 5.0  # the gateway's own default would wait 10 s
    assert bearer_tokens(api_server) == {TOKEN}


def test_in_a_pod_without_a_mounted_token_the_problem_says_which_file_is_missing(
    api_server: SandboxKubeAPI, tmp_path: Path
) -> None:
    empty = tmp_path / "no-account"
    empty.mkdir()

    found = connect(None, KubernetesSettings(), account_dir=empty)

    assert found.gateway is None and found.configured
    assert found.problem == f"Service token file does not exist. (looked in {empty})"
    assert api_server.requests == []


def test_explain_in_a_pod_without_a_mounted_token_says_why_it_has_no_cluster(
    api_server: SandboxKubeAPI, tmp_path: Path
) -> None:
    empty = tmp_path / "no-account"  # automountServiceAccountToken: false, say
    empty.mkdir()

    result = in_pod(empty, tmp_path, "explain", "--config", write_config(tmp_path), write_alert(tmp_path))

    assert result.returncode == 0, result.stderr
    said = "the pod's service account (namespace ?) could not be used: Service token file does not exist."
    assert said in result.stdout and f"(looked in {empty})" in result.stdout
    assert "KUBECONFIG unset" not in result.stdout
    assert api_server.requests == []
