"""Issue #17's quality rule for every speed-up: ``chromata eval`` on the validation photos, with the code of
this tree and of a commit before the change, within 1 % in CIEDE2000 and colourfulness.

Runs ``chromata eval DATA`` (the shipped model card's held-out photos, the built-in model) once with each
tree (``--before REV``: a git worktree), reads both ``eval.parquet`` reports and compares the built-in
model's rows photo by photo: the means, their relative change, and the largest change on any one photo.

    python benchmarks/quality_unchanged.py --data ../shared/data/photos --before REV

Writes its section of docs/benchmarks.md (``quality-unchanged``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"ciede2000": "mean CIEDE2000", "colourfulness": "colourfulness", "uncertainty": "mean uncertainty"}


def evaluate(tree: Path, data: Path, out: Path, limit: int | None) -> Any:
    import pyarrow.parquet as pq

    env = {**os.environ, "PYTHONPATH": str(tree)} if tree != ROOT else dict(os.environ)
    cmd = [sys.executable, "-m", "chromata.cli", "eval", str(data), "--out", str(out)]
    cmd += ["--limit", str(limit)] if limit else []
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=out.parent, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"chromata eval failed with {tree}: {proc.stderr[-2000:]}")
    rows = pq.read_table(out / "eval.parquet").to_pandas()
    return rows[rows["method"] == "builtin"].set_index("image").sort_index()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before = work / "before"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "-q", "--detach", str(before), args.before], check=True)
        try:
            old = evaluate(before, args.data.resolve(), work / "before-report", args.limit)
            new = evaluate(ROOT, args.data.resolve(), work / "after-report", args.limit)
        finally:
            subprocess.run([*git, "remove", "--force", str(before)], check=True)
    assert list(old.index) == list(new.index), "the two runs evaluated different photos"
    out: dict[str, Any] = {"photos": len(new), "metrics": {}}
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
    worst = max(abs(r["metrics"][c]["relative_change"]) for c in ("ciede2000", "colourfulness"))
    verdict = "within" if worst <= 0.01 else "**outside**"
    lines += ["", f"Issue #17's rule (within 1 % in CIEDE2000 and colourfulness): {verdict}."]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    ap.add_argument("--before", metavar="REV", required=True, help="the commit to compare with")
    ap.add_argument("--limit", type=int, help="only the first N validation photos (a smoke run)")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("quality-unchanged", __doc__, add_arguments, measure, markdown)


if __name__ == "__main__":
    main()
