"""The deployment files: the Dockerfile, compose.yaml, the nginx cache in front, Kubernetes.

Containers cannot run where the tests run, so each file is checked by what can run here: the
Dockerfile by BuildKit's own parser and the install script it shares with the test command; its
health check command against a real server; the nginx config by a real nginx (``nginx -t``, then
serving in front of a real ``ogshot serve``); the Kubernetes manifests against the Kubernetes
schemas; compose.yaml by what its services must agree on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dockerfile
import httpx
import kubernetes_validate
import pytest
import yaml

from ogshot.settings import Settings

from .conftest import decode, free_port, ogshot_serve, wait_for_port
from .fake_upstream import KEY as UPSTREAM_KEY
from .fake_upstream import FakeUpstream
from .test_ops import value

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {f"OGSHOT_{name.upper()}" for name in Settings.model_fields}


# --- Dockerfile ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def commands() -> list[Any]:
    return list(dockerfile.parse_file(str(ROOT / "Dockerfile")))


def last(commands: list[Any], name: str) -> Any:
    found = [c for c in commands if c.cmd == name]
    assert found, f"the Dockerfile has no {name}"
    return found[-1]


def test_dockerfile_is_multi_stage_on_slim_python(commands: list[Any]) -> None:
    args = {c.value[0].split("=", 1)[0]: c.value[0] for c in commands if c.cmd == "ARG"}
    assert args["PYTHON_IMAGE"].split("=", 1)[1].startswith("python:3.11-slim")
    stages = [c for c in commands if c.cmd == "FROM"]
    assert len(stages) == 2
    assert all(s.value[0] == "${PYTHON_IMAGE}" for s in stages)
    assert stages[0].value[-1] == "build"
    assert any(c.cmd == "COPY" and "--from=build" in c.flags for c in commands)


def test_dockerfile_copies_only_files_that_exist_and_are_sent(commands: list[Any]) -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for c in commands:
        if c.cmd != "COPY" or any(f.startswith("--from") for f in c.flags):
            continue
        for source in c.value[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert source.split("/")[0] not in ignored, f"COPY {source}: in .dockerignore"


def test_image_and_tests_install_system_packages_with_one_script(commands: list[Any]) -> None:
    script = ROOT / "scripts" / "install-system-deps"
    runs = " ".join(c.value[0] for c in commands if c.cmd == "RUN")
    assert "install-system-deps --chromium" in runs  # with the build argument
    assert "else install-system-deps;" in runs  # and without it
    copies = [c.value for c in commands if c.cmd == "COPY"]
    assert any(v[0] == "scripts/install-system-deps" for v in copies)
    # Both stages take the argument: the browser in the image, Playwright in the virtualenv.
    assert [c.original for c in commands].count("ARG CHROMIUM=false") == 2
    assert 'pip install ".[chromium]"' in runs
    assert "install-system-deps --chromium --test" in (ROOT / "scripts" / "test").read_text()

    def listed(*flags: str) -> list[str]:
        out = subprocess.run(
            ["bash", str(script), *flags, "--list"], capture_output=True, text=True, check=True
        )
        return out.stdout.split()

    image = listed()
    assert {"libfribidi0", "fonts-noto-core", "fonts-noto-color-emoji"} <= set(image)
    assert "chromium" in listed("--chromium") and "chromium" not in image
    tested = listed("--chromium", "--test")
    assert set(image) < set(tested) and {"redis-server", "nginx-light"} <= set(tested)
    # The machine running these tests has every package the image ships.
    for pkg in image:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        ).stdout
        assert "install ok installed" in status, pkg


def test_image_runs_ogshot_serve_unprivileged(commands: list[Any]) -> None:
    user = last(commands, "USER").value[0]
    assert user not in ("root", "0") and not user.startswith("0:")
    assert any("useradd" in c.value[0] and f" {user}" in c.value[0] for c in commands)
    cmd = list(last(commands, "CMD").value)
    assert cmd[:2] == ["ogshot", "serve"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    port = cmd[cmd.index("--port") + 1]
    assert last(commands, "EXPOSE").value == (port,)
    env = dict(v.split("=", 1) for c in commands if c.cmd == "ENV" for v in _env_pairs(c))
    assert last(commands, "VOLUME").value == (env["OGSHOT_CACHE_DIR"],)
    assert {k for k in env if k.startswith("OGSHOT_")} <= SETTINGS
    assert last(commands, "STOPSIGNAL").value == ("SIGTERM",)


def _env_pairs(command: Any) -> list[str]:
    # The parser gives ENV a=b c=d as (a, b, c, d).
    v = list(command.value)
    return [f"{v[i]}={v[i + 1]}" for i in range(0, len(v), 2)]


def _run_probe(argv: list[str], port: int) -> int:
    """A container probe's command, run here: its python is this one, its port the server's."""
    assert argv[0] == "python"
    code = argv[2].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    assert code != argv[2], "the probe does not ask 127.0.0.1:8000"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20).returncode


def test_healthcheck_command_asks_healthz_and_fails_without_a_server(
    commands: list[Any], nginx_in_front: tuple[str, str]
) -> None:
    check = last(commands, "HEALTHCHECK")
    assert check.value[0] == "CMD" and check.json
    argv = list(check.value[1:])
    assert "/healthz" in argv[2]
    assert any(f.startswith("--timeout=") for f in check.flags)
    origin = nginx_in_front[1]
    assert _run_probe(argv, int(origin.rsplit(":", 1)[1])) == 0
    assert _run_probe(argv, free_port()) != 0


# --- compose.yaml ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_two_replicas_on_one_redis_behind_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"ogshot", "redis", "nginx"}
    app, redis, nginx = services["ogshot"], services["redis"], services["nginx"]
    assert app["deploy"]["replicas"] == 2
    assert app["build"]["context"] == "." and "CHROMIUM" in app["build"]["args"]
    assert app["expose"] == ["8000"] and "ports" not in app  # reached through nginx only
    env = app["environment"]
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert env["OGSHOT_REDIS_URL"] == "redis://redis:6379/0"
    # Secrets come from outside the file.
    for name in ("OGSHOT_UPSTREAM_KEY", "OGSHOT_SIGNING_KEYS"):
        assert env[name].startswith("${") and env[name].endswith(":-}")
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    grace = int(app["stop_grace_period"].rstrip("s"))
    assert grace > int(env["OGSHOT_SHUTDOWN_TIMEOUT"])

    assert redis["image"].startswith("redis:7")
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "--save" in redis["command"] and "allkeys-lru" in redis["command"]

    assert nginx["image"].startswith("nginx:")
    assert nginx["ports"] == [f"8080:{nginx['environment']['NGINX_PORT']}"]
    assert nginx["environment"]["OGSHOT_ORIGIN"] == "ogshot:8000"
    assert nginx["depends_on"]["ogshot"]["condition"] == "service_healthy"
    (mount,) = nginx["volumes"]
    source, target, mode = mount.split(":")
    assert (ROOT / source).is_file() and mode == "ro"
    assert target.startswith("/etc/nginx/templates/") and target.endswith(".template")


def test_compose_healthcheck_command_asks_readyz(
    compose: dict[str, Any], nginx_in_front: tuple[str, str]
) -> None:
    test = compose["services"]["ogshot"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert _run_probe(test[1:], int(nginx_in_front[1].rsplit(":", 1)[1])) == 0
    assert _run_probe(test[1:], free_port()) != 0


# --- nginx -----------------------------------------------------------------------------------

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_config(prefix: Path, origin: str, port: int) -> Path:
    """The shipped template filled in as the nginx image does, inside a minimal main file that
    keeps every path under ``prefix`` and runs one unprivileged process."""
    template = (ROOT / "deploy" / "nginx" / "ogshot.conf.template").read_text()
    values = {"OGSHOT_ORIGIN": origin, "NGINX_PORT": str(port), "NGINX_CACHE_DIR": "cache"}
    for name, v in values.items():
        template = template.replace("${" + name + "}", v)
    assert "${" not in template, "a template variable that compose.yaml does not set"
    (prefix / "ogshot.conf").write_text(template)
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi")
    )
    main = prefix / "nginx.conf"
    main.write_text(
        f"""daemon off;
master_process off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log {prefix / "access.log"};
    {temp} uwsgi_temp_path {prefix / "uwsgi"}; scgi_temp_path {prefix / "scgi"};
    include {prefix / "ogshot.conf"};
}}
"""
    )
    return main


def test_nginx_accepts_the_shipped_config(tmp_path: Path) -> None:
    main = nginx_config(tmp_path, f"127.0.0.1:{free_port()}", free_port())
    out = subprocess.run(
        [NGINX, "-t", "-c", str(main), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr


def test_nginx_check_fails_on_a_broken_config(tmp_path: Path) -> None:
    """``nginx -t`` as run above can fail: a directive it does not know is refused."""
    main = nginx_config(tmp_path, f"127.0.0.1:{free_port()}", free_port())
    conf = tmp_path / "ogshot.conf"
    conf.write_text(conf.read_text().replace("proxy_cache_lock on;", "proxy_cache_lok on;"))
    out = subprocess.run(
        [NGINX, "-t", "-c", str(main), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0 and "proxy_cache_lok" in out.stderr


@pytest.fixture(scope="module")
def nginx_in_front(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: FakeUpstream
) -> Iterator[tuple[str, str]]:
    """A real nginx with the shipped config, in front of a real ``ogshot serve`` capturing
    through the fake upstream; yields (nginx's base URL, ogshot's base URL)."""
    tmp_path = tmp_path_factory.mktemp("cdn")
    env = {
        "OGSHOT_CAPTURE": "http",
        "OGSHOT_UPSTREAM_URL": fake_upstream.url,
        "OGSHOT_UPSTREAM_KEY": UPSTREAM_KEY,
    }
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    with ogshot_serve(app_dir, env=env) as origin:
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        port = free_port()
        main = nginx_config(prefix, origin.removeprefix("http://"), port)
        proc = subprocess.Popen(
            [NGINX, "-c", str(main), "-p", str(prefix), "-e", str(prefix / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc, "nginx", detail=lambda: (prefix / "error.log").read_text())
            yield f"http://127.0.0.1:{port}", origin
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def _card_requests(origin: str) -> float:
    text = httpx.get(f"{origin}/metrics").text
    return sum(
        value(text, "ogshot_requests_total", route="/og.png", status=s) for s in ("200", "422")
    )


def test_nginx_serves_repeat_cards_from_its_cache(
    nginx_in_front: tuple[str, str], fake_upstream: FakeUpstream
) -> None:
    cdn, origin = nginx_in_front
    params = {"title": "Cached at the edge"}
    before = _card_requests(origin)
    first = httpx.get(f"{cdn}/og.png", params=params)
    second = httpx.get(f"{cdn}/og.png", params=params)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-cache-status"] == "MISS"
    assert second.headers["x-cache-status"] == "HIT"
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    assert second.headers["cache-control"] == first.headers["cache-control"]
    assert _card_requests(origin) - before == 1
    # HEAD is answered from the same entry.
    head = httpx.head(f"{cdn}/og.png", params=params)
    assert head.headers["x-cache-status"] == "HIT" and head.content == b""
    # An error says no-store: nginx keeps none, each one reaches ogshot.
    before = _card_requests(origin)
    for _ in range(2):
        bad = httpx.get(f"{cdn}/og.png", params={"title": "x", "accent": "nope"})
        assert bad.status_code == 422 and bad.headers["x-cache-status"] == "MISS"
    assert _card_requests(origin) - before == 2
    # Probes and metrics are not published through it.
    assert httpx.get(f"{cdn}/metrics").status_code == 404
    assert httpx.get(f"{cdn}/readyz").status_code == 404


def test_nginx_lets_one_request_of_a_herd_through(
    nginx_in_front: tuple[str, str], fake_upstream: FakeUpstream
) -> None:
    cdn, origin = nginx_in_front
    fake_upstream.hold = 1.0  # the card's capture is slow: the herd arrives while it is made
    params = {"title": "Herd", "url": "https://example.com/page-herd"}
    try:
        before = _card_requests(origin)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: httpx.get(f"{cdn}/og.png", params=params), range(8)))
    finally:
        fake_upstream.hold = 0
    assert [r.status_code for r in answers] == [200] * 8
    assert len({r.content for r in answers}) == 1
    assert decode(answers[0].content).size == (1200, 630)
    assert "x-ogshot-fallback" not in answers[0].headers
    statuses = sorted(r.headers["x-cache-status"] for r in answers)
    assert statuses == ["HIT"] * 7 + ["MISS"], statuses
    assert _card_requests(origin) - before == 1


# --- Kubernetes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    docs = yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "ogshot.yaml").read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


#: The oldest Kubernetes the example is written for (the preStop ``sleep`` action).
KUBERNETES = "1.30.0"


def test_kubernetes_manifests_match_the_schemas(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    assert set(manifests) == {
        ("Deployment", "ogshot"),
        ("Service", "ogshot"),
        ("HorizontalPodAutoscaler", "ogshot"),
        ("Deployment", "ogshot-redis"),
        ("Service", "ogshot-redis"),
    }
    for doc in manifests.values():
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_kubernetes_validation_can_fail(manifests: dict[tuple[str, str], dict[str, Any]]) -> None:
    import copy

    broken = copy.deepcopy(manifests[("Deployment", "ogshot")])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


def test_kubernetes_deployment_probes_ports_and_settings(
    manifests: dict[tuple[str, str], dict[str, Any]], commands: list[Any]
) -> None:
    deployment = manifests[("Deployment", "ogshot")]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("ogshot:")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    cmd = list(last(commands, "CMD").value)
    assert ports["http"] == int(cmd[cmd.index("--port") + 1])
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env) <= SETTINGS, set(env) - SETTINGS
    assert ports["metrics"] == int(env["OGSHOT_METRICS_PORT"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == env["OGSHOT_METRICS_PORT"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    redis_service = manifests[("Service", "ogshot-redis")]
    assert env["OGSHOT_REDIS_URL"] == (
        f"redis://{redis_service['metadata']['name']}:{redis_service['spec']['ports'][0]['port']}/0"
    )
    # Stopping: the pause before SIGTERM plus the drain fit in the grace period.
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pause + int(env["OGSHOT_SHUTDOWN_TIMEOUT"])
    # Unprivileged, as the image's user.
    useradd = next(c.value[0] for c in commands if c.cmd == "RUN" and "useradd" in c.value[0])
    assert f"--uid {pod['securityContext']['runAsUser']}" in useradd
    assert pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    env_image = dict(v.split("=", 1) for c in commands if c.cmd == "ENV" for v in _env_pairs(c))
    assert env_image["OGSHOT_CACHE_DIR"] in mounts and "/tmp" in mounts  # read-only root
    service = manifests[("Service", "ogshot")]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    hpa = manifests[("HorizontalPodAutoscaler", "ogshot")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ogshot",
    }
    assert hpa["minReplicas"] >= 2
