"""Joining or starting Ray says what is wrong in one line: an address that does not answer, CUDA on a cluster
without GPUs; a plain local start prints none of Ray's notices."""

import os
import socket
import subprocess
import sys
import time

import pytest

from chromata.config import build_config
from chromata.errors import ConfigError

pytestmark = pytest.mark.ray


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_an_unreachable_ray_address_is_one_config_error_in_seconds():
    import ray

    from chromata.actors.colorizer import connect

    assert not ray.is_initialized()
    for address in (f"127.0.0.1:{closed_port()}", f"ray://127.0.0.1:{closed_port()}"):
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=r"cannot reach the Ray cluster at .*--ray-address") as info:
            connect(address)
        assert "\n" not in str(info.value) and time.monotonic() - t0 < 10
    assert not ray.is_initialized()


def test_a_plain_local_start_prints_no_ray_notice():
    code = (
        "import ray\nfrom chromata.actors.colorizer import connect\n"
        "connect(None, num_cpus=1)\nassert ray.is_initialized()\nray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "Token authentication" not in out.stderr + out.stdout
    assert "WARNING" not in out.stderr, out.stderr


def test_cuda_on_a_cluster_without_gpus_is_one_config_error(ray_local, collection, tmp_path):
    from chromata.actors.colorizer import ColorizerPool

    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), device="cuda")
    with pytest.raises(ConfigError, match=r"^device=cuda was requested but the Ray cluster has no GPUs; use"):
        ColorizerPool(cfg)
