"""The official DDColor code as an oracle for ``chromata.models.ddcolor`` (writes the fixture its tests compare with).

The official repository (github.com/piddnad/DDColor) is run from where it lies, OUTSIDE this repository: its code
never enters chromata, only numbers do. This script

1. builds the OFFICIAL tiny model with the settings of the official inference scripts (``ddcolor.DDColor``:
   MultiScaleColorDecoder, 100 queries, 3 scales, 9 decoder layers, 2 output channels, nf 512, last_norm
   Spectral, do_normalize False), and loads into it, through the official loader
   (``ddcolor.build_ddcolor_model``, a ``{"params": ...}`` file), the weights of chromata's deterministic
   recipe (``chromata.models.ddcolor.synthetic_state_dict`` on the official keys and shapes); it checks that
   every tensor of the official model now holds the recipe's value (the official loader is not strict);
2. records the official state dict's keys and shapes of both variants;
3. runs the official network on two grey images at the working size — a real photo from examples/scans and a
   synthetic gradient — given as L* and turned into RGB as the official pipeline does (L*, a = b = 0, OpenCV
   LAB2RGB), and records inputs and outputs;
4. runs the official full pipeline (``ddcolor.ColorizationPipeline``: resize to the working size, grey RGB,
   network, nearest upsampling of a/b, merge with the original L*, LAB2BGR, 8-bit) on one small grey scan.

    python benchmarks/oracle_ddcolor.py --official /tmp/ddcolor-official --out tests/fixtures/ddcolor_oracle.json

where /tmp/ddcolor-official is a checkout (or ``git archive`` extract) of piddnad/DDColor. Beside the JSON it
writes ddcolor_oracle.npz (inputs and outputs at the working size) and ddcolor_pipeline_{in,out}.png. The
official code runs without timm (its pure-torch fallback); ``basicsr.archs``'s package __init__ (which imports
torchvision through basicsr.utils) is bypassed by registering the package path alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SCANS = REPO / "examples" / "scans"


def import_official(root: Path) -> Any:
    """The official ``ddcolor`` package, imported from ``root`` without basicsr.archs' heavy __init__."""
    sys.path.insert(0, str(root))
    import basicsr  # noqa: F401  (its own __init__ is light)

    archs = types.ModuleType("basicsr.archs")
    archs.__path__ = [str(root / "basicsr" / "archs")]
    sys.modules["basicsr.archs"] = archs
    import ddcolor

    return ddcolor


def official_settings(size: int) -> dict[str, Any]:
    return {
        "decoder_name": "MultiScaleColorDecoder",
        "input_size": [size, size],
        "num_output_channels": 2,
        "last_norm": "Spectral",
        "do_normalize": False,
        "num_queries": 100,
        "num_scales": 3,
        "dec_layers": 9,
    }


def official_keys(ddcolor: Any, encoder: str) -> dict[str, list[int]]:
    """The official state dict's keys and shapes (a CPU model: the official constructor cannot run on the meta
    device; built at 32 px, the smallest size its probing forward accepts, ~1 GB and a few seconds for large)."""
    net = ddcolor.DDColor(encoder_name=encoder, **official_settings(32))
    return {k: list(v.shape) for k, v in net.state_dict().items()}


def grey_rgb_official(lightness: np.ndarray) -> np.ndarray:
    """(N, S, S) L* -> (N, S, S, 3) RGB in [0, 1], as the official pipeline makes its network input."""
    out = []
    for li in lightness:
        lab = np.dstack([li, np.zeros_like(li), np.zeros_like(li)]).astype(np.float32)
        out.append(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB))
    return np.stack(out).astype(np.float32)


def inputs(size: int) -> tuple[np.ndarray, list[str]]:
    """Two grey images as L* at the working size: a real photo (area-reduced) and a synthetic gradient."""
    photo = cv2.imread(str(SCANS / "moose.jpg"))
    assert photo is not None
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    lab = cv2.cvtColor(np.dstack([small] * 3), cv2.COLOR_BGR2Lab)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    gradient = 100.0 * (0.6 * xx + 0.4 * yy)
    gradient += 15.0 * ((xx - 0.3) ** 2 + (yy - 0.6) ** 2 < 0.04)  # a brighter disc: some structure
    lightness = np.stack([lab[..., 0], np.clip(gradient, 0.0, 100.0)]).astype(np.float32)
    return lightness, ["examples/scans/moose.jpg (grey, INTER_AREA)", "gradient with a disc"]


def pipeline_input(width: int, height: int) -> np.ndarray:
    photo = cv2.imread(str(SCANS / "duck.jpg"))
    assert photo is not None
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(grey, (width, height), interpolation=cv2.INTER_AREA), np.uint8)


def to_json(facts: dict[str, Any], keys: dict[str, dict[str, list[int]]]) -> str:
    """The facts indented, then "keys": each variant's state-dict keys in order, one ``"key": [shape]`` a line."""
    head = json.dumps(facts, indent=1)[:-2]
    variants = [
        f' "{name}": {{\n' + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in shapes.items()) + "\n }"
        for name, shapes in keys.items()
    ]
    return head + ',\n "keys": {\n' + ",\n".join(variants) + "\n }\n}\n"


def official_commit(root: Path, given: str | None) -> str:
    if given:
        return given
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout: pass --official-commit)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, required=True, help="checkout or extract of piddnad/DDColor")
    ap.add_argument("--official-commit", help="the official commit, when --official is no git checkout")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "ddcolor_oracle.json")
    ap.add_argument("--size", type=int, default=64, help="working size (a multiple of 32)")
    ap.add_argument("--full", default="160x120", help="the pipeline input's WIDTHxHEIGHT")
    args = ap.parse_args()

    from chromata.models import ddcolor as ours

    torch.set_num_threads(2)
    official = import_official(args.official.resolve())
    keys = {"tiny": official_keys(official, "convnext-t"), "large": official_keys(official, "convnext-l")}
    state = ours.synthetic_state_dict(keys["tiny"])

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "recipe-tiny.pth"
        torch.save({"params": state}, path)
        model = official.build_ddcolor_model(official.DDColor, model_path=str(path), input_size=args.size,
                                             model_size="tiny", device=torch.device("cpu"))  # fmt: skip
    loaded = model.state_dict()
    assert list(loaded) == list(state), "the official model's keys differ from the recipe's"
    for k, v in state.items():
        assert torch.equal(loaded[k], v), f"the official loader did not take {k}"

    lightness, names = inputs(args.size)
    rgb = grey_rgb_official(lightness)
    with torch.inference_mode():
        ab = model(torch.from_numpy(rgb.transpose(0, 3, 1, 2).copy())).numpy().astype(np.float32)

    width, height = (int(v) for v in args.full.split("x"))
    grey = pipeline_input(width, height)
    pipe = official.ColorizationPipeline(model, input_size=args.size, device=torch.device("cpu"))
    bgr = pipe.process(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))  # what cv2.imread gives for a grey file

    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    npz = out.with_suffix(".npz")
    np.savez_compressed(npz, lightness=lightness, rgb=rgb, ab=ab)
    pin, pout = out.with_name("ddcolor_pipeline_in.png"), out.with_name("ddcolor_pipeline_out.png")
    cv2.imwrite(str(pin), grey)
    cv2.imwrite(str(pout), bgr)
    facts = {
        "official": {
            "repository": "github.com/piddnad/DDColor",
            "commit": official_commit(args.official, args.official_commit),
            "class": "ddcolor.DDColor",
            "loader": "ddcolor.build_ddcolor_model",
            "settings": official_settings(args.size),
        },
        "recipe": ours.SYNTHETIC_RECIPE,
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__},
        "working_size": args.size,
        "inputs": names,
        "arrays": npz.name,
        "ab_stats": {
            "mean": [round(float(v), 3) for v in ab.mean(axis=(0, 2, 3))],
            "std": [round(float(v), 3) for v in ab.std(axis=(0, 2, 3))],
        },
        "pipeline": {
            "input": pin.name,
            "output": pout.name,
            "width": width,
            "height": height,
            "input_size": args.size,
            "steps": "official ColorizationPipeline.process on the grey PNG as BGR",
        },
    }
    out.write_text(to_json(facts, keys), encoding="utf-8")
    sizes = sum(p.stat().st_size for p in (out, npz, pin, pout))
    print(f"wrote {out} and 3 files beside it ({sizes / 1024:.0f} KiB); a/b mean {facts['ab_stats']['mean']}, "
          f"std {facts['ab_stats']['std']}")  # fmt: skip


if __name__ == "__main__":
    main()
