"""Every reason code chromata can record has words a curator understands."""

import re
from pathlib import Path

import chromata
from chromata.judgement.reasons import REASONS, describe, reason

CORE = Path(chromata.__file__).parent


def recorded_codes() -> set[str]:
    """The codes the code base appends to reasons lists, skips with, or names as constants."""
    codes: set[str] = set()
    for path in [*CORE.rglob("*.py"), *(CORE.parent / "flows").rglob("*.py")]:
        text = path.read_text()
        codes |= set(re.findall(r'reasons\.append\("([a-z_]+)"\)', text))
        codes |= set(re.findall(r'found\.append\("([a-z_]+)"\)', text))
        codes |= set(re.findall(r'Skip\("([a-z_]+)"', text))
        codes |= set(re.findall(r'^[A-Z_]+ = "([a-z_]+)"  # chromata.judgement.reasons', text, re.M))
    return codes


def test_every_recorded_reason_has_a_text():
    codes = recorded_codes()
    routing = {"least_confident", "below_threshold", "curator_rerun"}
    assert {"low_contrast", "document_text", "already_colour", *routing} <= codes
    missing = sorted(codes - set(REASONS))
    assert codes <= set(REASONS), f"reasons without a text in chromata/judgement/reasons.py: {missing}"


def test_tones_recorded_by_the_tone_check_have_texts():
    from chromata.judgement import inputchecks

    src = Path(inputchecks.__file__).read_text()
    kinds = set(re.findall(r'kind = "([a-z_]+)"', src))  # the tones classify_tone records as reasons
    assert kinds == {"sepia_toned", "cyanotype", "toned_monochrome"}
    assert kinds <= set(REASONS)


def test_describe_puts_risks_first_and_never_shows_nothing():
    assert describe(["sepia_toned", "least_confident", "heavy_noise"]) == [
        REASONS["heavy_noise"].text,
        REASONS["least_confident"].text,
        REASONS["sepia_toned"].text,
    ]
    assert reason("some_new_check").text == "some new check"
