"""Oracle for ``chromata.models.deoldify``: DeOldify's own code, run, writes ``tests/fixtures/deoldify_oracle.*``.

What runs is the official module tree, unmodified, imported from checkouts outside this repository:
jantic/DeOldify (``deoldify/generators.py``, ``unet.py``, ``layers.py``, ``filters.py``, ``visualize.py``)
and fastai v1 (the whole ``fastai`` and ``fastai.vision`` packages: ``layers.py``, ``callbacks/hooks.py``,
``torch_core.py``, ``basic_train.py`` with ``Learner.load`` and ``pred_batch``, ``vision/data.py``...). The
generators are built by DeOldify's ``gen_inference_deep`` / ``gen_inference_wide`` (fastai's ``Learner``
loading a ``models/<name>.pth`` file in fastai's layout, strict), the images go through DeOldify's
``ModelImageVisualizer`` -> ``MasterFilter`` -> ``ColorizerFilter`` (no watermark). Only what cannot run on
Python 3.11 / torch 2.13 without extra packages is replaced, here, outside the package:

* matplotlib, fastprogress, pkg_resources, IPython, ffmpeg, yt_dlp: empty stand-ins (used for plotting,
  progress bars and video only);
* torchvision: a stand-in ``torchvision.models`` whose ``resnet34`` / ``resnet101`` are torchvision's own
  ``resnet.py`` when ``--torchvision-resnet FILE`` names a copy of it (pytorch/vision's
  ``torchvision/models/resnet.py``; its pretrained download is not needed, the weights are replaced), else
  chromata's torchvision-compatible ResNet (then the body is not independently checked). The fixture
  records which;
* ``PIL.Image`` is imported first (old Pillow did that as a side effect of ``import PIL``);
* DeOldify's dummy DataBunch reads ``./dummy/``: a temporary folder with a few grey PNGs is made for it.

Weights are chromata's deterministic recipe (``chromata.models.deoldify.recipe_weights``, seeded per key by
crc32) applied to the key names and shapes of the official generator, saved as ``{'model': ..., 'opt': ...}``
and loaded by fastai's ``Learner.load``. Recorded: every key and shape of both generators, the smallest
working sizes the official networks accept, the generators' outputs at working size for two inputs (a
64 x 64 crop of an example scan and a 32 x 32 gradient, ImageNet-normalised grey RGB as DeOldify feeds it),
and DeOldify's whole still pipeline for one non-square 8-bit grey image (stretch to the render size,
'LA' -> 'RGB', normalise, generator, de-normalise, clamp, 8 bits, stretch back, YUV merge).

Usage (about a minute on 2 cores)::

    mkdir -p /tmp/deoldify-src /tmp/fastai1-src
    git -C /work/.mirror/jantic+DeOldify/repo archive HEAD | tar -x -C /tmp/deoldify-src
    git -C /work/.mirror/fastai+fastai1/repo archive HEAD fastai | tar -x -C /tmp/fastai1-src
    python benchmarks/oracle_deoldify.py --deoldify /tmp/deoldify-src --fastai /tmp/fastai1-src \\
        --torchvision-resnet /tmp/tv/resnet.py --out tests/fixtures

``/tmp/tv/resnet.py``: pytorch/vision's ``torchvision/models/resnet.py`` (the fixture was made with the copy at
commit 054e54c573ba46e5b9c63f1eea3ad4d103afbea2, 2019, its ``load_state_dict_from_url`` import and call dropped,
which only the pretrained download uses). The torchvision wheel itself does not import beside torch 2.13.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chromata.models import deoldify as ours  # noqa: E402

SCAN = ROOT / "examples" / "scans" / "reims-cathedral.jpg"
WEIGHTS = {"artistic": "ColorizeArtistic_gen", "stable": "ColorizeStable_gen"}


class _StandIn(types.ModuleType):
    """A module whose every missing attribute is an inert class (for imports used only by plotting/progress)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        obj = type(name, (), {"__init__": lambda self, *a, **k: None, "__call__": lambda self, *a, **k: None})
        setattr(self, name, obj)
        return obj


def _stand_in(name: str, **attrs: Any) -> types.ModuleType:
    module = _StandIn(name)
    module.__path__ = []
    module.__dict__.update(attrs)
    sys.modules[name] = module
    parent, _, leaf = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], leaf, module)
    return module


def _torchvision_resnets(resnet_file: Path | None) -> tuple[Callable[..., Any], Callable[..., Any], str]:
    if resnet_file is not None:
        spec = importlib.util.spec_from_file_location("_official_torchvision_resnet", resnet_file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.resnet34, module.resnet101, f"torchvision's resnet.py ({resnet_file.name})"

    def r34(pretrained: bool = False, **_: Any) -> Any:
        return ours.ResNet(34)

    def r101(pretrained: bool = False, **_: Any) -> Any:
        return ours.ResNet(101)

    return r34, r101, "chromata.models.deoldify.ResNet (no torchvision source given)"


def install_official(deoldify_src: Path, fastai_src: Path, resnet_file: Path | None) -> types.SimpleNamespace:
    """Import DeOldify and fastai v1 from their checkouts; return the modules the oracle uses."""
    import PIL.Image  # noqa: F401  (fastai v1's vision/data.py reads PIL.Image after a bare `import PIL`)

    for name in (
        "matplotlib", "matplotlib.pyplot", "matplotlib.patches", "matplotlib.patheffects", "matplotlib.axes",
        "fastprogress", "fastprogress.fastprogress", "pkg_resources", "IPython", "IPython.display", "ffmpeg",
        "yt_dlp", "torchvision", "torchvision.transforms",
    ):  # fmt: skip
        _stand_in(name)
    sys.modules["pkg_resources"].require = lambda *a: None  # type: ignore[attr-defined]
    r34, r101, resnet_source = _torchvision_resnets(resnet_file)
    _stand_in("torchvision.models", resnet34=r34, resnet101=r101)
    sys.path[:0] = [str(fastai_src), str(deoldify_src)]
    fastai = importlib.import_module("fastai")
    importlib.import_module("fastai.vision")
    deoldify = importlib.import_module("deoldify")
    deoldify.device.set(device=deoldify.device.current())  # CPU, as DeOldify's default
    generators = importlib.import_module("deoldify.generators")
    filters = importlib.import_module("deoldify.filters")
    visualize = importlib.import_module("deoldify.visualize")
    unet = importlib.import_module("deoldify.unet")
    return types.SimpleNamespace(
        fastai=fastai, generators=generators, filters=filters, visualize=visualize, unet=unet,
        resnet_source=resnet_source,
    )  # fmt: skip


@contextlib.contextmanager
def _dummy_data_dir() -> Iterator[Path]:
    """DeOldify's ``get_dummy_databunch`` lists ./dummy/: a temporary working folder with a few grey PNGs."""
    old = Path.cwd()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "dummy").mkdir()
        for i in range(20):
            cv2.imwrite(str(Path(tmp) / "dummy" / f"{i}.png"), np.full((8, 8), 10 * i, np.uint8))
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def official_learner(off: types.SimpleNamespace, variant: str, root: Path) -> Any:
    """DeOldify's own loading: ``gen_inference_deep/wide(root, name)`` reads ``root/models/name.pth``."""
    net_fn = off.generators.gen_inference_deep if variant == "artistic" else off.generators.gen_inference_wide
    return net_fn(root_folder=root, weights_name=WEIGHTS[variant])


def inputs() -> dict[str, np.ndarray]:
    """The two working-size inputs (8-bit grey) and the pipeline input (non-square, 8-bit grey)."""
    scan = cv2.imread(str(SCAN), cv2.IMREAD_GRAYSCALE)
    assert scan is not None, SCAN
    h, w = scan.shape
    crop = scan[h // 2 - 160 : h // 2 + 160, w // 2 - 160 : w // 2 + 160]
    scan64 = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:32, 0:32]
    gradient = np.clip(8 * xx + 3 * yy, 0, 255).astype(np.uint8)
    pipeline = cv2.resize(crop[:, 20:-20], (88, 100), interpolation=cv2.INTER_AREA)  # 100 rows x 88 columns
    return {"scan64": scan64, "gradient32": gradient, "pipeline_in": pipeline}


def normalised(grey: np.ndarray) -> torch.Tensor:
    """8-bit grey -> DeOldify's model input: RGB / 255, ImageNet-normalised (N=1)."""
    x = torch.from_numpy(np.repeat(grey[None].astype(np.float32) / 255.0, 3, axis=0))
    mean, std = torch.tensor(ours.IMAGENET_MEAN)[:, None, None], torch.tensor(ours.IMAGENET_STD)[:, None, None]
    return ((x - mean) / std)[None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deoldify", type=Path, required=True, help="a checkout of jantic/DeOldify")
    ap.add_argument("--fastai", type=Path, required=True, help="a checkout of fastai/fastai1 (holding fastai/)")
    ap.add_argument("--torchvision-resnet", type=Path, help="a copy of torchvision/models/resnet.py")
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    args = ap.parse_args()
    torch.set_num_threads(2)
    off = install_official(args.deoldify.resolve(), args.fastai.resolve(), args.torchvision_resnet)
    from PIL import Image

    data = inputs()
    arrays: dict[str, Any] = dict(data)
    facts: dict[str, Any] = {
        "recipe": ours.RECIPE,
        "official_sources": {
            "deoldify": "jantic/DeOldify deoldify/{generators,unet,layers,filters,visualize}.py, run unmodified",
            "fastai": "fastai/fastai1 fastai/ (v1), run unmodified",
            "resnet": off.resnet_source,
            "torch": torch.__version__,
        },
        "variants": {},
    }
    with _dummy_data_dir() as root:
        (root / "models").mkdir()
        for variant in ("artistic", "stable"):
            t0 = time.perf_counter()
            # 1. the official generator with its own initialisation: its keys and shapes
            learn0 = official_learner_uninitialised(off, variant)
            shapes = {k: list(v.shape) for k, v in learn0.model.state_dict().items()}
            del learn0
            # 2. the recipe's weights in fastai's layout, loaded by fastai's Learner.load (strict)
            state = ours.recipe_weights({k: tuple(s) for k, s in shapes.items()})
            opt = {"state": {}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.99), "params": [0, 1]}]}
            torch.save({"model": state, "opt": opt}, root / "models" / f"{WEIGHTS[variant]}.pth")
            learn = official_learner(off, variant, root)
            model = learn.model.eval()
            outputs = {}
            with torch.no_grad():
                for name in ("scan64", "gradient32"):
                    outputs[name] = model(normalised(data[name]))[0].numpy().astype(np.float32)
                    arrays[f"{variant}_{name}_out"] = outputs[name]
                sizes = []
                for size in (16, 32, 48):
                    try:
                        model(torch.zeros(1, 3, size, size))
                        sizes.append(size)
                    except RuntimeError as exc:
                        print(f"{variant}: {size} px refused: {str(exc).splitlines()[0]}")
            # 3. DeOldify's still pipeline on one image, render factor 4 (64 px), no watermark
            if variant == "artistic":
                vis = off.visualize.ModelImageVisualizer(
                    off.filters.MasterFilter([off.filters.ColorizerFilter(learn=learn)], render_factor=4),
                    results_dir=str(root / "results"),
                )
                src = root / "pipeline_in.png"
                Image.fromarray(data["pipeline_in"]).save(src)
                result = vis.get_transformed_image(src, render_factor=4, post_process=True, watermarked=False)
                arrays["pipeline_out"] = np.asarray(result.convert("RGB"))
                raw = vis.get_transformed_image(src, render_factor=4, post_process=False, watermarked=False)
                arrays["pipeline_raw"] = np.asarray(raw.convert("RGB"))
            facts["variants"][variant] = {
                "weights_name": WEIGHTS[variant],
                "keys": len(shapes),
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "shapes": shapes,
                "working_sizes_accepted": sizes,
                "output_ranges": {k: [float(v.min()), float(v.max()), float(v.std())] for k, v in outputs.items()},
            }
            mine = ours.load_net(ours.read_checkpoint(root / "models" / f"{WEIGHTS[variant]}.pth"))
            with torch.no_grad():
                diff = max(
                    float((mine(normalised(data[n]))[0] - torch.from_numpy(o)).abs().max()) for n, o in outputs.items()
                )
            took = time.perf_counter() - t0
            print(f"{variant}: {len(shapes)} keys, {took:.1f} s; chromata's max abs difference {diff:.2e}")
            del mine
            del learn, model, state
    facts["pipeline"] = {
        "render_factor": 4,
        "input": "pipeline_in: 100 x 88 8-bit grey (rows x columns), saved as PNG, opened as RGB by DeOldify",
        "pipeline_out": "DeOldify's result with post_process=True (YUV merge with the original's Y), 8-bit RGB",
        "pipeline_raw": "post_process=False: the generator's RGB stretched back to 100 x 88, 8-bit",
    }
    facts["inputs"] = {
        "scan64": f"64 x 64 INTER_AREA reduction of a 320 px centre crop of examples/scans/{SCAN.name}, 8-bit grey",
        "gradient32": "32 x 32 8-bit grey, min(8 x + 3 y, 255)",
        "model_input": "grey/255 as 3 equal channels, ImageNet-normalised (DeOldify's norm), batch of 1",
        "outputs": "<variant>_<input>_out: the generator's (3, S, S) output, ImageNet-normalised RGB in (-3, 3)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "deoldify_oracle.npz", **arrays)
    (args.out / "deoldify_oracle.json").write_text(json.dumps(facts, indent=1) + "\n")
    print(f"wrote {args.out / 'deoldify_oracle.json'} and .npz")


def official_learner_uninitialised(off: types.SimpleNamespace, variant: str) -> Any:
    """DeOldify's learner before loading: ``gen_learner_deep/wide`` on its dummy DataBunch."""
    data = off.generators.get_dummy_databunch()
    import torch.nn.functional as F

    if variant == "artistic":
        return off.generators.gen_learner_deep(data=data, gen_loss=F.l1_loss)
    return off.generators.gen_learner_wide(data=data, gen_loss=F.l1_loss)


if __name__ == "__main__":
    main()
