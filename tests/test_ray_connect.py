"""Joining or starting Ray says what is wrong in one line: an address that does not answer, CUDA on a cluster
without GPUs; a plain local start prints none of Ray's notices."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from chromata.config import build_config
from chromata.errors import ConfigError
from chromata.pipeline import allocator

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


def test_a_plain_local_start_prints_no_ray_notice_and_gives_the_allocator_settings_to_colorizers_only(
    collection, tmp_path
):
    """A local instance as chromata starts it: no notices; Ray's own CPU count (container-aware: here standing at
    1 for a pod whose host has more cores), not the host's os.cpu_count(); the allocator settings in the
    colorizer actors' processes alone — not in the driver, whose environment Ray's processes and every
    subprocess inherit, nor in another Ray worker."""
    code = (
        "import os, ray, ray._private.utils\nfrom chromata.pipeline import allocator\n"
        "from chromata.actors.colorizer import ColorizerPool, connect\nfrom chromata.config import build_config\n"
        "ray._private.utils.get_num_cpus = lambda *a, **k: 1  # Ray's count in a 1-CPU pod\n"
        "assert os.cpu_count() > 1, os.cpu_count()\n"
        "connect(None)\nassert ray.is_initialized()\n"
        "assert ray.cluster_resources()['CPU'] == 1, ray.cluster_resources()\n"
        "assert 'GLIBC_TUNABLES' not in os.environ, os.environ['GLIBC_TUNABLES']\n"
        "plain = ray.remote(lambda: os.environ.get('GLIBC_TUNABLES'))\n"
        "assert ray.get(plain.options(num_cpus=0).remote()) is None\n"
        f"pool = ColorizerPool(build_config(source={str(collection)!r}, destination={str(tmp_path / 'o')!r}))\n"
        "info = pool.info()[0]\n"
        "assert info['allocator'] == allocator.tunables() and info['allocator_in_effect'], info\n"
        "assert pool.options['runtime_env'] == {'env_vars': {'GLIBC_TUNABLES': allocator.tunables()}}, pool.options\n"
        "pool.shutdown()\nray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "GLIBC_TUNABLES")}
    env = {k: v for k, v in env.items() if k not in allocator.MALLOC_VARIABLES}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "Token authentication" not in out.stderr + out.stdout
    assert "WARNING" not in out.stderr, out.stderr


def test_a_cluster_whose_operator_set_malloc_gets_no_allocator_settings(collection, tmp_path):
    """An operator's own malloc setting where the workers run (here MALLOC_ARENA_MAX in the environment the
    instance starts from) wins: the colorizer actors start with it and without chromata's settings."""
    code = (
        "import os, ray\nfrom chromata.actors.colorizer import ColorizerPool, connect\n"
        "from chromata.config import build_config\n"
        "connect(None, num_cpus=1)\n"
        f"pool = ColorizerPool(build_config(source={str(collection)!r}, destination={str(tmp_path / 'o')!r}))\n"
        "assert 'runtime_env' not in pool.options, pool.options\n"
        "info = pool.info()[0]\n"
        "assert info['allocator'] == '' and not info['allocator_in_effect'], info\n"
        "pool.shutdown()\nray.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "GLIBC_TUNABLES")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**env, "MALLOC_ARENA_MAX": "2"}, timeout=180
    )
    assert out.returncode == 0, out.stderr


def test_a_head_started_by_ray_start_is_joined_with_its_token_and_refusal_says_how():
    """``ray start --head`` turns token authentication on by default, and Ray sends no token to an explicit
    address unless told to (so that a machine's token does not go to any address it is given): without
    ``RAY_AUTH_MODE=token`` the run stops with one line that says so; with it, it joins."""
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths under it must fit 107 bytes
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
         "--include-dashboard=false", "--disable-usage-stats", f"--object-store-memory={100 * 2**20}",
         f"--temp-dir={temp}"],  # its address file there, not in /tmp/ray where a plain ray.init() looks
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},  # stopped at once by SIGTERM, not drained 30 s
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "the Ray head did not start"
                time.sleep(0.5)
        code = (
            "import ray\nfrom chromata.actors.colorizer import connect\nfrom chromata.errors import ConfigError\n"
            f"try:\n    connect('127.0.0.1:{port}')\nexcept ConfigError as exc:\n    print('refused:', exc)\n"
            "else:\n    print('joined', int(ray.cluster_resources()['CPU']))\n    ray.shutdown()\n"
        )
        refused = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
        line = refused.stdout.strip().splitlines()[-1]
        assert line.startswith("refused: cannot join the Ray cluster") and "set RAY_AUTH_MODE=token" in line, line
        joined = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                                env={**env, "RAY_AUTH_MODE": "token"})  # fmt: skip
        assert joined.stdout.split()[-2:] == ["joined", "1"], joined.stderr[-2000:]  # the head's one CPU
    finally:
        head.terminate()
        head.wait(timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def test_cuda_on_a_cluster_without_gpus_is_one_config_error(ray_local, collection, tmp_path):
    from chromata.actors.colorizer import ColorizerPool

    cfg = build_config(source=str(collection), destination=str(tmp_path / "out"), device="cuda")
    with pytest.raises(ConfigError, match=r"^device=cuda was requested but the Ray cluster has no GPUs; use"):
        ColorizerPool(cfg)


def test_each_actor_asks_for_an_equal_share_of_whole_cpus_and_of_the_gpus():
    from chromata.actors.colorizer import resources_per_actor

    laptop = [{"CPU": 2.0}]
    assert resources_per_actor(1, laptop) == {"num_gpus": 0.0, "num_cpus": 2.0}
    assert resources_per_actor(2, laptop) == {"num_gpus": 0.0, "num_cpus": 1.0}
    assert resources_per_actor(3, laptop) == {"num_gpus": 0.0, "num_cpus": 1.0}  # at least one
    pods = [{"CPU": 6.0}] * 4  # KubeRay pods of 6 CPUs: an actor never asks for more than a pod has
    assert resources_per_actor(2, pods)["num_cpus"] == 6.0
    assert resources_per_actor(8, pods)["num_cpus"] == 3.0
    gpu_node = [{"CPU": 16.0, "GPU": 1.0}]  # several actors feed one GPU, sharing its node's cores
    assert resources_per_actor(4, gpu_node) == {"num_gpus": 0.25, "num_cpus": 4.0}
    assert resources_per_actor(1, gpu_node) == {"num_gpus": 1.0, "num_cpus": 16.0}
    mixed = [{"CPU": 2.0}, {"CPU": 16.0, "GPU": 2.0}, {"CPU": 16.0, "GPU": 2.0}]  # the CPU head runs no actor
    assert resources_per_actor(8, mixed) == {"num_gpus": 0.5, "num_cpus": 4.0}


def test_an_actor_runs_as_many_threads_as_it_was_given_cpus(ray_local, collection, tmp_path):
    from chromata.actors.colorizer import ColorizerPool

    for workers, threads in ((1, 2), (2, 1)):  # ray_local has 2 CPUs
        pool = ColorizerPool(build_config(source=str(collection), destination=str(tmp_path / "o"), workers=workers))
        try:
            infos = pool.info()
            assert [info["threads"] for info in infos] == [threads] * workers
            # each actor's process started with the allocator settings (chromata.pipeline.allocator), where they apply
            expected = allocator.worker_env().get("GLIBC_TUNABLES", os.environ.get("GLIBC_TUNABLES", ""))
            assert all(info["allocator"] == expected for info in infos)
        finally:
            pool.shutdown()
