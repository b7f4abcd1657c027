"""Why an image is where it is, in words a curator understands.

Every reason code that chromata records (``confidence_reasons`` in the manifest and the review queue) has one
entry here: the text the CLI and the review app show, and its kind — a ``risk`` (it lowers the confidence and
is a reason to look), ``region`` (where the confidence estimator blames the colour, by the kind of thing there:
already in the confidence, no penalty added), ``material`` (what the scan is: recorded, not penalised) or
``routing`` (why the image was queued when no risk fired). A code without an entry is shown as its words, so a new
check is never shown as nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["risk", "region", "material", "routing"]


@dataclass(frozen=True)
class Reason:
    code: str
    text: str
    kind: Kind = "risk"


REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        Reason("tiny_image", "very small image: little detail for the model to go on"),
        Reason("low_contrast", "flat, low-contrast scan: colours are guessed from little"),
        Reason("low_dynamic_range", "narrow tonal range (a faded or flat print)"),
        Reason("underexposed", "very dark scan"),
        Reason("overexposed", "very light scan"),
        Reason("heavy_noise", "heavy grain or noise"),
        Reason("document_text", "text page: colour adds nothing and may mislead"),
        Reason("high_chroma_uncertainty", "the model was unsure of most colours"),
        # where the confidence estimator (chromata.judgement.assess) blames the colour, by what is there
        Reason("doubtful_colour_building", "colour on a surface that is usually neutral: building or stone", "region"),
        Reason("doubtful_colour_printed", "colour on a surface that is usually neutral: paper or print", "region"),
        Reason("doubtful_colour_person", "skin or clothing tones uncertain", "region"),
        Reason("doubtful_colour_animal", "an animal's colouring uncertain (coat, feathers)", "region"),
        Reason("doubtful_colour_landscape", "sky, water or land coloured doubtfully", "region"),
        Reason("doubtful_colour_plant", "foliage or flower colour uncertain", "region"),
        Reason("doubtful_colour_vehicle", "a vehicle's paint colour is a guess", "region"),
        Reason("doubtful_colour_food", "food colour uncertain", "region"),
        Reason("doubtful_colour_object", "an object's colour is a guess", "region"),
        Reason("icc_not_srgb", "scan tagged with a colour space other than sRGB (read as sRGB)"),
        Reason("sepia_toned", "toned print (sepia): colorized from its lightness, the toning not kept", "material"),
        Reason("cyanotype", "cyanotype: colorized from its lightness, the blue not kept", "material"),
        Reason("toned_monochrome", "toned print: colorized from its lightness, the toning not kept", "material"),
        Reason("already_colour", "already in colour: left as it is", "material"),
        Reason("least_confident", "among the least confident of its run (the review budget)", "routing"),
        Reason("below_threshold", "less confident than the review threshold", "routing"),
        Reason("curator_rerun", "colorized again after a curator rejected it", "routing"),
    )
}


def reason(code: str) -> Reason:
    """The entry for ``code`` (an unknown code: its own words, as a risk)."""
    return REASONS.get(code) or Reason(code, code.replace("_", " "), "risk")


def describe(codes: Iterable[str]) -> list[str]:
    """The texts of ``codes``, risks first, in their order otherwise."""
    entries = [reason(c) for c in codes]
    order = {"risk": 0, "region": 1, "routing": 2, "material": 3}
    return [r.text for r in sorted(entries, key=lambda r: order[r.kind])]
