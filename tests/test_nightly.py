"""Nightly deployments from a collections file: validated, registered with a cron schedule, and a
scheduled run really executed by Prefect's runner (in its own process, as in production)."""

import asyncio

import pytest

from chromata.collections_config import load_collections
from chromata.errors import ConfigError
from tests.conftest import EXAMPLES

GOOD = """
[defaults]
workers = 1
timezone = "Europe/Amsterdam"
review_threshold = 0.3

[[collections]]
name = "glass-plates"
source = "{src}"
destination = "{dst}/glass"
schedule = "30 2 * * *"
review_budget = 0.05

[[collections]]
name = "postcards"
source = "{src}"
destination = "{dst}/postcards"
"""


def test_collections_file_is_validated(tmp_path):
    path = tmp_path / "chromata.toml"
    path.write_text(GOOD.format(src=tmp_path / "in", dst=tmp_path / "out"))
    a, b = load_collections(path)
    assert (a.name, a.schedule, a.timezone, a.config.review_budget) == (
        "glass-plates",
        "30 2 * * *",
        "Europe/Amsterdam",
        0.05,
    )
    assert (b.schedule, b.config.collection, b.config.workers) == ("0 2 * * *", "postcards", 1)
    # a collection's own routing replaces the default policy; the others keep it
    assert (a.config.review_threshold, b.config.review_threshold, b.config.review_budget) == (None, 0.3, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[collections]]\nname='A b'\nsource='x'\ndestination='y'\n", "name must be"),
        ("[[collections]]\nname='a'\nsource='x'\ndestination='y'\nschedule='daily'\n", "five-field cron"),
        ("[[collections]]\nname='a'\nsource='x'\ndestination='y'\nworkers=0\n", "collection a: invalid workers"),
        (
            "[[collections]]\nname='a'\nsource='x'\ndestination='y'\n[[collections]]\nname='a'\nsource='x'\n"
            "destination='z'\n",
            "duplicate name",
        ),
        ("[defaults]\nworkers=1\n", "no [[collections]]"),
        ("not toml = = =", "not valid TOML"),
    ],
)
def test_bad_collections_files_fail_with_one_line(tmp_path, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_collections(path)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_night_routes_by_the_newest_adopted_fit_never_by_a_fit_that_did_not_beat_the_current_score(tmp_path):
    """The deployment's run resolves ``routing_fit = "latest"`` when it starts: the newest fit that was adopted,
    not a newer one whose own report shows it does worse out of sample than the score it would replace."""
    from dataclasses import replace

    from chromata.archive.local import LocalStorage
    from chromata.flows import nightly
    from chromata.flows.nightly import build_deployments
    from chromata.judgement import routing_fit
    from tests.test_routing_fit import _examples_the_current_score_ranks_perfectly, decided_destination

    storage, _ = decided_destination(tmp_path)  # its destination is tmp_path / "out"
    path = tmp_path / "chromata.toml"
    path.write_text(f'[[collections]]\nname = "plates"\nsource = "{tmp_path}/in"\ndestination = "{tmp_path}/out"\n')
    (deployment,) = build_deployments(path)
    cfg = deployment.parameters["cfg"]
    assert cfg["routing_fit"] == "latest"
    assert routing_fit.resolved(cfg["routing_fit"], LocalStorage(cfg["destination"])) is None  # no fit: fixed score
    good, _, _ = routing_fit.from_decisions(storage)
    worse = routing_fit.fit_routing(_examples_the_current_score_ranks_perfectly())
    assert worse.report["cv_auroc"] < worse.report["current_auroc"]  # its own report says it does worse
    routing_fit.save(storage, replace(worse, created_at="2999-01-01T00:00:00Z"))  # newer
    assert routing_fit.resolved(cfg["routing_fit"], LocalStorage(cfg["destination"])) == good.to_json()
    assert good.adopted and not worse.adopted and nightly.ROUTING_NOTE in deployment.description


@pytest.mark.slow
def test_deployments_are_scheduled_and_a_scheduled_run_executes(tmp_path, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.runner import Runner
    from prefect.states import Scheduled

    from chromata.flows.nightly import build_deployments

    src = tmp_path / "in"
    src.mkdir()
    for name in ("calf.jpg", "cat.jpg"):
        (src / name).write_bytes((EXAMPLES / name).read_bytes())
    path = tmp_path / "chromata.toml"
    path.write_text(GOOD.format(src=src, dst=tmp_path / "out"))
    deployments = build_deployments(path)
    assert [d.name for d in deployments] == ["nightly-glass-plates", "nightly-postcards"]

    async def scenario():
        runner = Runner(query_seconds=1, pause_on_shutdown=False)
        ids = [await runner.aadd_deployment(d) for d in deployments]
        async with get_client() as client:
            registered = await client.read_deployment(ids[0])
            schedule = registered.schedules[0].schedule
            assert (schedule.cron, schedule.timezone) == ("30 2 * * *", "Europe/Amsterdam")
            assert registered.parameters["cfg"]["review_budget"] == 0.05
            run = await client.create_flow_run_from_deployment(ids[0], state=Scheduled())
        await runner.start(run_once=True)  # picks up the due scheduled run and executes it
        async with get_client() as client:
            return await client.read_flow_run(run.id)

    finished = asyncio.run(scenario())
    assert finished.state.is_completed(), finished.state
    assert sorted(p.name for p in (tmp_path / "out" / "glass").iterdir()) == ["_chromata", "calf.jpg", "cat.jpg"]
