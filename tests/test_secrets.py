"""Secrets come from the environment only, and never reach manifests, outputs, reports, logs or Prefect's
recorded parameters."""

from __future__ import annotations

import asyncio
import logging
import os

import cv2
import pytest
from typer.testing import CliRunner

from chromata.config import build_config
from chromata.errors import ConfigError
from tests.conftest import gradient_gray

SECRET = "chromata-test-secret-7Qz9KxW2"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("review_db", "postgresql+psycopg://curator:hunter2@db.example/chromata"),
        ("endpoint_url", "https://key:secret@s3.example.org"),
        ("ray_address", "ray://admin:pw@head:10001"),
    ],
)
def test_passwords_in_config_urls_are_refused(field, value):
    with pytest.raises(ConfigError, match="must not contain a password"):
        build_config(source="scans", destination="out", **{field: value})


@pytest.fixture(scope="module")
def secret_env():
    """A distinctive secret key in the environment before Ray starts (its workers inherit it)."""
    old = os.environ.get("AWS_SECRET_ACCESS_KEY")
    os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET
    yield
    os.environ["AWS_SECRET_ACCESS_KEY"] = old or "testing"


@pytest.mark.slow
@pytest.mark.ray
def test_no_secret_in_manifest_outputs_report_logs_or_prefect_parameters(
    secret_env, moto_endpoint, s3, tmp_path, ray_local, prefect_harness, caplog
):
    from prefect.client.orchestration import get_client

    from chromata.cli import app

    s3.create_bucket(Bucket="sec-src")
    s3.create_bucket(Bucket="sec-dst")
    for i in range(3):
        s3.put_object(Bucket="sec-src", Key=f"c/s{i}.jpg", Body=cv2.imencode(".jpg", gradient_gray())[1].tobytes())
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(
        app,
        ["run", "s3://sec-src/c/", "--out", "s3://sec-dst/c/", "--endpoint-url", moto_endpoint,
         "--review-db", f"sqlite:///{tmp_path / 'q.sqlite'}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = s3.list_objects_v2(Bucket="sec-dst")["Contents"]
    assert any(o["Key"].endswith(".parquet") for o in written)
    for obj in written:  # manifest fragments, outputs with their XMP, heatmaps, the HTML report
        body = s3.get_object(Bucket="sec-dst", Key=obj["Key"])["Body"].read()
        assert SECRET.encode() not in body, obj["Key"]
    assert SECRET not in caplog.text and SECRET not in result.output

    async def flow_parameters() -> list[str]:
        async with get_client() as client:
            return [str(run.parameters) for run in await client.read_flow_runs()]

    params = asyncio.run(flow_parameters())
    assert params and not any(SECRET in p for p in params)
    assert (tmp_path / "q.sqlite").exists() and SECRET.encode() not in (tmp_path / "q.sqlite").read_bytes()
