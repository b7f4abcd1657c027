import pytest
from pydantic import ValidationError

from chromata.config import build_config
from chromata.errors import ConfigError


def test_valid_config_is_frozen(tmp_path):
    cfg = build_config(source="in", destination=str(tmp_path))
    with pytest.raises(ValidationError):
        cfg.shard_size = 3  # type: ignore[misc]
    assert cfg.review_db_url().startswith("sqlite:///") and cfg.review_db_url().endswith("review.sqlite")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"shard_size": 0}, "shard_size"),
        ({"workers": -1}, "workers"),
        ({"review_threshold": 1.5}, "review_threshold"),
        ({"model": "magic"}, "unknown model"),
        ({"device": "tpu"}, "unknown device"),
        ({"destination": "in"}, "must differ from source"),
        ({"destination": "./in/"}, "must differ from source"),
        ({"destination": "in/colorized"}, "must not be inside the source"),
        ({"colour": "yes"}, "colour"),
    ],
)
def test_invalid_config_is_one_clear_line(values, message):
    with pytest.raises(ConfigError) as exc:
        build_config(**{"source": "in", "destination": "out", **values})
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)


def test_training_config_is_checked_before_any_work(tmp_path):
    from chromata.training.config import build_train_config

    data = tmp_path / "photos"
    data.mkdir()
    cfg = build_train_config(workers=2, data=str(data), out=tmp_path / "m", crop=128, init="scratch")
    assert cfg.crop == 128 and cfg.init == "scratch"
    for values, message in (
        ({"data": str(tmp_path / "nope")}, "training data folder not found"),
        ({"data": str(data), "crop": 100}, "--crop must be a multiple of 32"),
        ({"data": str(data), "init": str(tmp_path / "w.pt")}, "--init must be one of imagenet, scratch, builtin"),
        ({"data": str(data), "workers": 0}, "--workers must be at least 1"),
        ({"data": str(data), "stepz": 3}, "invalid training configuration"),
        ({"data": str(data), "checkpoint_every": -1}, "--checkpoint-every must be 0"),
        ({"data": str(data), "checkpoint_every": 100, "workers": 2}, "resumes a single-process run"),
    ):
        with pytest.raises(ConfigError, match=message):
            build_train_config(**{"out": tmp_path / "m", **values})


def test_routing_is_a_review_budget_by_default_or_a_threshold_never_both(tmp_path):
    from chromata.config import DEFAULT_REVIEW_BUDGET

    base = {"source": str(tmp_path / "in"), "destination": str(tmp_path / "out")}
    default = build_config(**base)
    assert (default.review_budget, default.review_threshold) == (DEFAULT_REVIEW_BUDGET, None)
    threshold = build_config(**base, review_threshold=0.4)
    assert (threshold.review_budget, threshold.review_threshold) == (None, 0.4)
    assert build_config(**threshold.model_dump()) == threshold  # what travels to workers and Prefect reads back
    with pytest.raises(ConfigError, match="set review_budget or review_threshold, not both"):
        build_config(**base, review_threshold=0.4, review_budget=0.1)
