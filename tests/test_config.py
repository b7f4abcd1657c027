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
