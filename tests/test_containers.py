"""The container set-up: the compose file's references exist, images are pinned, configs load.
(Docker cannot build here; `make check-infra` lints the Dockerfiles with hadolint and checkov.)"""

from pathlib import Path

import yaml

from chromata.collections_config import load_collections

ROOT = Path(__file__).resolve().parents[1]


def test_compose_mounts_exist_and_images_are_pinned():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, svc in compose["services"].items():
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image ({image})"
        for vol in svc.get("volumes", []):
            host = vol.split(":", 1)[0]
            if host.startswith("./"):
                assert (ROOT / host).exists(), f"{name}: {host} does not exist"
        user = svc.get("user")
        assert user in (None, "10001"), name
    ports = [p for svc in compose["services"].values() for p in svc.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), "publish ports on localhost only"


def test_stack_configs_are_valid():
    found = load_collections(ROOT / "docker" / "chromata.toml")
    assert [c.name for c in found] == ["sample"]
    prom = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert list((ROOT / "dashboards" / "alerts").glob("*.yml"))


def test_dockerfiles_run_as_non_root_with_pinned_base():
    for path in (ROOT / "docker").glob("*.Dockerfile"):
        text = path.read_text()
        assert "USER 10001" in text, path.name
        assert "ARG BASE=python:3.11.11-slim-bookworm" in text, path.name
        assert "torch==${TORCH_VERSION}" in text and "ARG TORCH_VERSION=2.13.0" in text, path.name
