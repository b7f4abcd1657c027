"""Issue #17's quality rule for every speed-up: ``chromata eval`` on the validation photos, with the code of
this tree and of a commit before the change, within 1 % in CIEDE2000 and colourfulness.

Runs ``chromata eval DATA`` (the shipped model card's held-out photos, the built-in model) once with each
tree (``--before REV``: a git worktree), reads both ``eval.parquet`` reports and compares the built-in
model's rows photo by photo: the means, their relative change, and the largest change on any one photo.
``chromata eval`` merges in float; what a run writes goes through the 8-bit path (L* of the 8-bit grey, the
batch through the model, the 8-bit merge), so each tree also colorizes the same photos' greys that way and the
8-bit outputs are compared pixel by pixel (the 99th percentile and the largest difference, in levels).

    python benchmarks/quality_unchanged.py --data ../shared/data/photos --before REV

Writes its section of docs/benchmarks.md (``quality-unchanged``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"ciede2000": "mean CIEDE2000", "colourfulness": "colourfulness", "uncertainty": "mean uncertainty"}


CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import cv2, numpy as np
import chromata
try:
    from chromata.colormath import color
except ImportError:  # a tree from before the rooms of #24
    from chromata import color
from chromata.models import load_colorizer
assert Path(chromata.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), chromata.__file__
model = load_colorizer("builtin", device="cpu")
names = sys.argv[4:]
for i in range(0, len(names), 8):
    greys = [cv2.imread(str(Path(sys.argv[2]) / n), cv2.IMREAD_GRAYSCALE) for n in names[i:i + 8]]
    lights = [color.lightness_of(g) for g in greys]
    work = np.stack([color.working_lightness(color.reduce_lightness(li), model.input_size) for li in lights])
    pred = model.predict_ab(work)
    for n, li, ab in zip(names[i:i + 8], lights, pred.ab):
        cv2.imwrite(str(Path(sys.argv[3]) / (Path(n).stem + ".png")), color.merge_chroma_to(li, ab, np.uint8))
"""


def tree_env(tree: Path) -> dict[str, str]:
    """Each tree's own chromata first on the path (``this tree`` is checked to be the installed one)."""
    return {**os.environ, "PYTHONPATH": str(tree)} if tree != ROOT else dict(os.environ)


def outputs_8bit(tree: Path, data: Path, names: list[str], out: Path) -> None:
    out.mkdir()
    cmd = [sys.executable, "-c", CHILD, str(tree), str(data), str(out), *names]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tree_env(tree), cwd=out.parent, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"8-bit outputs failed with {tree}: {proc.stderr[-2000:]}")


def level_differences(a: Path, b: Path) -> dict[str, float]:
    import cv2
    import numpy as np

    diffs = [
        np.abs(cv2.imread(str(f)).astype(np.int16) - cv2.imread(str(b / f.name)).astype(np.int16)).ravel()
        for f in sorted(a.glob("*.png"))
    ]
    every = np.concatenate(diffs)
    return {"p99": float(np.percentile(every, 99)), "max": float(every.max()), "changed": float((every > 0).mean())}


def evaluate(tree: Path, data: Path, out: Path, limit: int | None) -> Any:
    import pyarrow.parquet as pq

    env = tree_env(tree)
    cmd = [sys.executable, "-m", "chromata.cli", "eval", str(data), "--out", str(out)]
    cmd += ["--limit", str(limit)] if limit else []
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out.parent, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"chromata eval failed with {tree}: {proc.stderr[-2000:]}")
    rows = pq.read_table(out / "eval.parquet").to_pandas()
    return rows[rows["method"] == "builtin"].set_index("image").sort_index()


@contextmanager
def tree_at(rev: str) -> Iterator[tuple[Path, Path]]:
    """(the code of ``rev`` in a git worktree, a scratch folder beside it); both removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before = work / "before"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "-q", "--detach", str(before), rev], check=True)
        try:
            yield before, work
        finally:
            subprocess.run([*git, "remove", "--force", str(before)], check=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tree_at(args.before) as (before, work):
        old = evaluate(before, args.data.resolve(), work / "before-report", args.limit)
        new = evaluate(ROOT, args.data.resolve(), work / "after-report", args.limit)
        assert list(old.index) == list(new.index), "the two runs evaluated different photos"
        names = [str(n) for n in new.index]
        outputs_8bit(before, args.data.resolve(), names, work / "before-8bit")
        outputs_8bit(ROOT, args.data.resolve(), names, work / "after-8bit")
        levels = level_differences(work / "before-8bit", work / "after-8bit")
    out: dict[str, Any] = {"photos": len(new), "metrics": {}, "levels_8bit": levels}
    for col in METRICS:
        b, a = float(old[col].mean()), float(new[col].mean())
        out["metrics"][col] = {
            "before": b,
            "after": a,
            "relative_change": (a - b) / b,
            "largest_change_on_a_photo": float((new[col] - old[col]).abs().max()),
        }
    return out


def _shown(path: Path) -> str:
    """A path as a reader of docs/ would type it from the repository's root."""
    return os.path.relpath(path.resolve(), ROOT)


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    lines = [
        "## Quality unchanged by the speed-ups (`benchmarks/quality_unchanged.py`)",
        "",
        f"`python benchmarks/quality_unchanged.py --data {_shown(args.data)} --before {args.before}` — "
        f"`chromata eval` of the built-in model on the {r['photos']} validation photos with the code of "
        f"{args.before} and of this tree. {machine}.",
        "",
        f"| | before ({args.before}) | this tree | change | largest change on one photo |",
        "|---|---:|---:|---:|---:|",
    ]
    for col, label in METRICS.items():
        m = r["metrics"][col]
        lines.append(
            f"| {label} | {m['before']:.4f} | {m['after']:.4f} | {100 * m['relative_change']:+.3f} % "
            f"| {m['largest_change_on_a_photo']:.4f} |"
        )
    lv = r["levels_8bit"]
    lines += [
        "",
        f"The 8-bit outputs of the same photos' greys, as a run writes them (L* of the 8-bit grey, batches of 8, "
        f"the 8-bit merge): {100 * lv['changed']:.3f} % of the samples differ between the trees, by at most "
        f"{lv['max']:.0f} level (99th percentile {lv['p99']:.0f}).",
    ]
    worst = max(abs(r["metrics"][c]["relative_change"]) for c in ("ciede2000", "colourfulness"))
    verdict = "within" if worst <= 0.01 else "**outside**"
    lines += ["", f"Issue #17's rule (within 1 % in CIEDE2000 and colourfulness): {verdict}."]
    return "\n".join(lines)


def check(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from throughput import installed_here  # "this tree" runs the installed chromata

    installed_here(ap)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    ap.add_argument("--before", metavar="REV", required=True, help="the commit to compare with")
    ap.add_argument("--limit", type=int, help="only the first N validation photos (a smoke run)")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("quality-unchanged", __doc__, add_arguments, measure, markdown, check)


if __name__ == "__main__":
    main()
