"""Coverage-guided fuzzing of the decode/validate path with atheris (libFuzzer).

Every input must either decode or raise ``ImageError`` with a reason code: any other exception, a hang
or a crash of the interpreter is a finding. Seeds are small valid and broken images (tests/hostile_corpus).

    python tests/fuzz_decode.py -runs=20000 -max_len=16384 -timeout=10   # the documented longer run
    python tests/fuzz_decode.py -runs=2000 -max_len=8192                 # what CI runs (tests/test_fuzz.py)

libFuzzer flags pass through (``-max_total_time=600``, ``-jobs`` …); a crashing input is written to
``crash-<sha1>`` in the working directory.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from chromata.errors import ImageError
    from chromata.judgement import inputchecks
    from chromata.media.imageio import decode, probe
    from chromata.pipeline import lightness_of

MAX_PIXELS = 4_000_000  # small: the fuzzer must not spend its time on legitimately huge images


def test_one_input(data: bytes) -> None:
    try:
        probe(data)
        image = decode(data, MAX_PIXELS)
    except ImageError as exc:
        assert exc.code, "every refusal has a reason code"
        return
    lightness = lightness_of(image.pixels)
    inputchecks.input_reasons(lightness, image.width, image.height)


def write_seeds(folder: Path) -> None:
    import cv2
    import numpy as np

    from tests.hostile_corpus import CORPUS

    for name, case in CORPUS.items():
        if "bomb" in name:
            continue  # hundreds of kB: libFuzzer's max_len would cut it anyway
        (folder / name.encode("ascii", "replace").decode().replace("?", "_")).write_bytes(case.make())
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))
    for ext in (".jpg", ".png", ".tif", ".webp", ".bmp"):
        (folder / f"small{ext}").write_bytes(cv2.imencode(ext, grey)[1].tobytes())


def main() -> None:
    args = list(sys.argv)
    seeds = tempfile.TemporaryDirectory(prefix="chromata-fuzz-seeds-")
    write_seeds(Path(seeds.name))
    corpora = [a for a in args[1:] if not a.startswith("-")]
    if not corpora:
        args.append(seeds.name)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
