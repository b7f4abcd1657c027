"""Shared fixtures: tiny synthetic images, real services (moto S3 over HTTP, PostgreSQL, Ray, Prefect)."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "scans"
PG_URL = os.environ.get("CHROMATA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# External programs some tests need. On a developer's machine a missing one skips those tests; with CI set
# (CI=true, as .ci/run and every CI service set it) it fails them: a check that CI skipped proves nothing.
TOOLS = {
    "exiftool": ("exiftool", "Debian package libimage-exiftool-perl"),
    "promtool": ("promtool", "Debian package prometheus"),
    "chromium": ("/usr/bin/chromium", "Debian package chromium"),
}


def in_ci(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    return env.get("CI", "").strip().lower() in ("1", "true", "yes")


def needs_tool(name: str) -> pytest.MarkDecorator:
    """Mark a test that runs ``name`` (a key of TOOLS)."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}: add it to tests/conftest.py TOOLS")
    return pytest.mark.needs_tool(name)


def tool_problem(name: str, ci: bool, path: str | None = None) -> tuple[str, str] | None:
    """None when the tool is there; else ("fail" in CI, "skip" elsewhere, and the reason)."""
    command, package = TOOLS[name]
    if shutil.which(command, path=path):
        return None
    reason = f"{name} ({package}) is not installed"
    if ci:
        return "fail", f"{reason}; CI is set, so the tests that need it fail instead of skipping"
    return "skip", reason


# Data sets some tests read, outside the repository. The same rule: skipped where missing, failed with CI set.
DATA = {
    "photos": (PHOTOS, "the photo set ../shared/data/photos (the built-in model's training and validation photos)"),
}


def needs_data(name: str) -> pytest.MarkDecorator:
    """Mark a test that reads the data set ``name`` (a key of DATA)."""
    if name not in DATA:
        raise ValueError(f"unknown data set {name!r}: add it to tests/conftest.py DATA")
    return pytest.mark.needs_data(name)


def data_problem(name: str, ci: bool, root: Path | None = None) -> tuple[str, str] | None:
    """None when the data set is there (``root``: where to look instead, for tests); else ("fail" in CI, "skip"
    elsewhere, and the reason)."""
    path, what = DATA[name]
    path = root or path
    if path.is_dir() and any(path.iterdir()):
        return None
    reason = f"{what} is not at {path}"
    if ci:
        return "fail", f"{reason}; CI is set, so the tests that need it fail instead of skipping"
    return "skip", reason


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_tool(name): runs an external program (skipped without it, failed in CI)")
    config.addinivalue_line("markers", "needs_data(name): reads a data set (skipped without it, failed in CI)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    problems = [tool_problem(mark.args[0], in_ci()) for mark in item.iter_markers("needs_tool")]
    problems += [data_problem(mark.args[0], in_ci()) for mark in item.iter_markers("needs_data")]
    for problem in problems:
        if problem and problem[0] == "fail":
            pytest.fail(problem[1], pytrace=False)
        if problem:
            pytest.skip(problem[1])


def gradient_gray(h: int = 96, w: int = 128, dtype: type = np.uint8) -> np.ndarray:
    """A grey image with structure: a horizontal gradient plus a bright disc."""
    x = np.linspace(0.1, 0.9, w, dtype=np.float32)[None, :].repeat(h, 0)
    yy, xx = np.mgrid[0:h, 0:w]
    x[(yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 5) ** 2] = 0.95
    top = 65535 if dtype == np.uint16 else 255
    return (x * top + 0.5).astype(dtype)


def colour_patches(h: int = 96, w: int = 128) -> np.ndarray:
    """A BGR image of saturated red, green and blue stripes (really a colour image)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 3] = (40, 40, 220)
    img[:, w // 3 : 2 * w // 3] = (40, 200, 40)
    img[:, 2 * w // 3 :] = (220, 60, 40)
    return img


def write_collection(root: Path) -> dict[str, Path]:
    """A small mixed collection: grey JPEG/PNG, a 16-bit TIFF, upper-case suffix, a corrupt file,
    a colour photo, a non-image file and a nested folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nested").mkdir(exist_ok=True)
    files = {
        "a.jpg": root / "a.jpg",
        "b.png": root / "b.png",
        "deep16.tif": root / "deep16.tif",
        "nested/C.JPEG": root / "nested" / "C.JPEG",
        "broken.jpg": root / "broken.jpg",
        "colour.png": root / "colour.png",
    }
    cv2.imwrite(str(files["a.jpg"]), gradient_gray(96, 128))
    cv2.imwrite(str(files["b.png"]), gradient_gray(80, 64)[:, ::-1])
    cv2.imwrite(str(files["deep16.tif"]), gradient_gray(72, 100, np.uint16))
    cv2.imwrite(str(files["nested/C.JPEG"]), gradient_gray(64, 64).T.copy())
    files["broken.jpg"].write_bytes(b"this is not a JPEG at all")
    cv2.imwrite(str(files["colour.png"]), colour_patches())
    (root / "README.txt").write_text("not an image; must be ignored\n")
    return files


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    root = tmp_path / "scans"
    write_collection(root)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 server on a real local HTTP port, talked to by boto3 like any endpoint."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(moto_endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=moto_endpoint)


def upload_collection(s3, bucket: str, prefix: str, root: Path) -> None:  # type: ignore[no-untyped-def]
    s3.create_bucket(Bucket=bucket)
    for path in sorted(root.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.relative_to(root).as_posix()}", Body=path.read_bytes())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL server, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"chromata_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True)
    except psycopg.OperationalError as exc:  # pragma: no cover - CI always has the server
        pytest.fail(f"PostgreSQL on 127.0.0.1:5432 is required for these tests: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=96 * 1024 * 1024, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()
