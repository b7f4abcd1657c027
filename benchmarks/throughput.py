"""Issue #17's yardstick, in one run over the same files: ``chromata run``'s steady state against the work no
colorizer can avoid (decoding each scan, encoding a colour file), and its start-up, piece by piece.

* bare loop: decode each grey scan and encode a 3-channel JPEG (quality 90), one process per core;
* ``chromata run`` (a real command in a fresh process: local Ray, Prefect, manifest, review queue) over the
  first ``--small`` and over all ``--images`` scans, each into a fresh destination, the two alternating for
  ``--repeats`` rounds. Steady state = (images − small) / (wall(images) − wall(small)), so start-up cancels;
  start-up = wall(small) − small / steady state (the fastest try of each);
* start-up pieces, each timed in a fresh interpreter: the interpreter with the CLI imported; the engines'
  imports (prefect, ray, torch); a local Ray started as chromata starts it; an empty Prefect flow run
  (Prefect's temporary local server); the built-in model loaded and run once.

    python benchmarks/throughput.py --images 80 --small 16 --before REV

``--before REV`` runs the same ``chromata run``s with the code of commit REV too (a git worktree made for
the run), the two trees alternating, for a before/after in one run. ``--warm`` also runs this tree's
commands against a Ray head and a Prefect server started once and left running (``RAY_ADDRESS``,
``PREFECT_API_URL``), as on a machine that colorizes every night: the start-up then left is chromata's own.
Writes its section of docs/benchmarks.md (``throughput``); no test asserts a time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1920, 1300)  # a 2.5 MP scan, as in the issue
QUALITY = 90

STARTUP_PIECES: dict[str, str] = {
    "interpreter + `import chromata.cli`": "import chromata.cli",
    "engine imports (prefect, ray, torch)": "import prefect, ray, torch",
    "local Ray started as chromata starts it": (
        "from chromata.actors.colorizer import connect; connect(None); import ray; ray.shutdown()"
    ),
    "an empty Prefect flow (temporary local server)": (
        "from prefect import flow\n@flow\ndef empty():\n    return 1\nempty()"
    ),
    "built-in model loaded and run once": (
        "import numpy as np; from chromata.models import load_colorizer\n"
        "m = load_colorizer('builtin', device='cpu'); m.predict_ab(np.zeros((1, 256, 256), np.float32))"
    ),
}


def make_scans(folder: Path, n: int) -> int:
    """``n`` grey 1920 × 1300 JPEG scans (quality 90) resized from the bundled samples; their total bytes."""
    samples = sorted((ROOT / "examples" / "scans").glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        grey = cv2.imread(str(samples[i % len(samples)]), cv2.IMREAD_GRAYSCALE)
        scan = cv2.resize(grey, SIZE, interpolation=cv2.INTER_CUBIC)
        scan = np.roll(scan, 17 * i, axis=1)  # no two files alike
        cv2.imwrite(str(folder / f"scan-{i:04d}.jpg"), scan, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    return sum(p.stat().st_size for p in folder.iterdir())


def _decode_encode(path: str) -> int:
    grey = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    assert ok
    return len(buf)


def bare_loop(files: list[Path], processes: int, repeats: int) -> float:
    """Images/s of decode + 3-channel JPEG encode on ``processes`` processes (best of ``repeats``)."""
    cv2.setNumThreads(1)
    best = 0.0
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pool.map(_decode_encode, [str(f) for f in files[:processes]])  # warm the workers
        for _ in range(repeats):
            t = time.perf_counter()
            pool.map(_decode_encode, [str(f) for f in files], chunksize=1)
            best = max(best, len(files) / (time.perf_counter() - t))
    return best


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_engines(work: Path) -> Iterator[dict[str, str]]:
    """A Ray head and a Prefect server started once and left running — a machine that colorizes every night
    (``chromata serve``), or a cluster — and the environment that makes ``chromata run`` join them
    (``RAY_ADDRESS``, ``PREFECT_API_URL``) instead of starting its own."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "RAY_ADDRESS": ""}
    env.pop("PREFECT_API_URL", None)
    ray_port, api_port = _free_port(), _free_port()
    head = subprocess.Popen(  # --block: stopping this process stops the processes it started, and no other Ray
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={ray_port}",
         f"--num-cpus={os.cpu_count()}", "--include-dashboard=false", "--disable-usage-stats",
         f"--object-store-memory={256 * 2**20}", f"--temp-dir={work / 'ray'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**env, "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},  # SIGTERM stops it at once (no 30 s drain)
    )  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(api_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**env, "PREFECT_HOME": str(work / "prefect")},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{api_port}/api"
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url + "/health", timeout=2).close()
                socket.create_connection(("127.0.0.1", ray_port), timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None or head.poll() is not None:
                    raise SystemExit("the Ray head or the Prefect server did not come up") from None
                time.sleep(0.5)
        time.sleep(3)  # the head's raylet registers after its GCS answers
        # the head has Ray's default token authentication; a driver given its address sends the token when told
        yield {"RAY_ADDRESS": f"127.0.0.1:{ray_port}", "RAY_AUTH_MODE": "token", "PREFECT_API_URL": url}
    finally:
        for proc in (server, head):
            proc.terminate()
        for proc in (server, head):
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def tree_env(tree: Path) -> dict[str, str]:
    """The environment of a command that runs chromata from ``tree`` (its own Prefect, a fresh local Ray)."""
    env = {**os.environ, "RAY_ADDRESS": "", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)  # the command's own Prefect, as in a user's shell
    if tree != ROOT:  # ahead of the installed (editable) chromata; Ray's workers inherit it
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
    return env


def before_tree(rev: str, work: Path) -> Path:
    """A worktree of ``rev`` whose ``chromata.flows`` / ``chromata.actors`` import from itself (as installed
    packages map them), checked by importing them."""
    tree = work / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), rev], check=True)
    for name in ("flows", "actors"):
        (tree / "chromata" / name).symlink_to(tree / name, target_is_directory=True)
    code = "import chromata.cli, chromata.flows.colorize_collection as f, chromata.actors.colorizer as a; "
    code += "print(f.__file__); print(a.__file__)"
    files = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=tree_env(tree), cwd=work
    ).stdout.split()
    assert all(Path(f).resolve().is_relative_to(tree.resolve()) for f in files), files
    return tree


def chromata_run(
    src: Path,
    out: Path,
    queue: Path,
    tree: Path = ROOT,
    device: str = "cpu",
    workers: int = 1,
    engines: dict[str, str] | None = None,
) -> float:
    """One ``chromata run`` of ``src`` into a fresh ``out`` in a fresh process, with the code of ``tree``
    (joining running ``engines`` when given); its wall time."""
    cmd = [sys.executable, "-m", "chromata.cli", "run", str(src), "--out", str(out), "--device", device]
    cmd += ["--workers", str(workers)]
    cmd += ["--review-db", f"sqlite:///{queue}"]
    env = {**tree_env(tree), **(engines or {})}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, cwd=out.parent)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"chromata run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall


def startup_pieces(repeats: int) -> dict[str, float]:
    """Each piece in a fresh interpreter, the fastest of ``repeats``; the interpreter alone is subtracted from
    every piece but the first (which includes it)."""
    env = {**os.environ, "RAY_ADDRESS": "", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)

    def timed(code: str) -> float:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env, timeout=600)
            best = min(best, time.perf_counter() - t)
        return best

    bare = timed("pass")
    return {name: timed(code) - (0.0 if i == 0 else bare) for i, (name, code) in enumerate(STARTUP_PIECES.items())}


def steady_and_startup(walls: dict[str, list[float]], images: int, small: int) -> dict[str, Any]:
    """From the fastest try of each size: images/s once started, and the start-up (the small run's wall
    time less its images at that rate)."""
    w_small, w_all = min(walls["small"]), min(walls["all"])
    steady = (images - small) / (w_all - w_small)
    return {"walls": walls, "steady_images_per_s": steady, "startup_s": w_small - small / steady}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big, small = work / "all", work / "small"
        total_bytes = make_scans(big, args.images)
        small.mkdir()
        files = sorted(big.iterdir())
        for f in files[: args.small]:
            os.link(f, small / f.name)
        processes = os.cpu_count() or 1
        bare = bare_loop(files, processes, args.repeats)
        print(json.dumps({"bare_images_per_s": round(bare, 2)}), flush=True)
        trees = {"this tree": ROOT}
        if args.before:
            trees = {f"before ({args.before})": before_tree(args.before, work), **trees}
        walls: dict[str, dict[str, list[float]]] = {t: {"small": [], "all": []} for t in trees}
        try:
            for round_ in range(args.repeats):
                order = list(trees.items())
                for label, tree in order if round_ % 2 == 0 else order[::-1]:
                    for name, src in (("small", small), ("all", big)):
                        run_dir = work / f"run-{len(walls[label][name])}-{name}-{tree.name}"
                        run_dir.mkdir()
                        queue = run_dir / "queue.sqlite"
                        wall = chromata_run(src, run_dir / "out", queue, tree, args.device, args.workers)
                        walls[label][name].append(round(wall, 2))
                        print(json.dumps({"tree": label, name: wall}), flush=True)
        finally:
            if args.before:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "before")])
        if args.warm:
            label = "this tree, joining running engines"
            walls[label] = {"small": [], "all": []}
            with running_engines(work) as engines:
                for _ in range(args.repeats):
                    for name, src in (("small", small), ("all", big)):
                        run_dir = work / f"warm-{len(walls[label][name])}-{name}"
                        run_dir.mkdir()
                        wall = chromata_run(src, run_dir / "out", run_dir / "queue.sqlite", ROOT, args.device,
                                            args.workers, engines)  # fmt: skip
                        walls[label][name].append(round(wall, 2))
                        print(json.dumps({"tree": label, name: wall}), flush=True)
        pieces = startup_pieces(args.repeats)
    return {
        "images": args.images,
        "small": args.small,
        "megapixels": SIZE[0] * SIZE[1] / 1e6,
        "mean_file_kb": total_bytes / args.images / 1024,
        "processes": processes,
        "bare_images_per_s": bare,
        "runs": {label: steady_and_startup(w, args.images, args.small) for label, w in walls.items()},
        "startup_pieces_s": pieces,
    }


def markdown(r: dict[str, Any], args: argparse.Namespace, machine: str) -> str:
    lines = [
        "## Throughput against the bare decode + encode loop, and start-up (`benchmarks/throughput.py`)",
        "",
        f"`python benchmarks/throughput.py --images {r['images']} --small {r['small']} --repeats {args.repeats}"
        + (f" --before {args.before}" if args.before else "")
        + (" --warm" if args.warm else "")
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + (f" --workers {args.workers}" if args.workers != 1 else "")
        + f"` — {r['images']} grey {SIZE[0]} × {SIZE[1]} JPEG scans ({r['megapixels']:.1f} MP, quality {QUALITY}, "
        f"{r['mean_file_kb']:.0f} KiB each) made from the bundled samples; every `chromata run` is a fresh "
        f"process with default options ({args.workers} actor{'s' if args.workers > 1 else ''}, device "
        f"{args.device}), the trees alternating. {machine}.",
        "",
        "| | images/s | × bare loop | start-up | wall time of every try |",
        "|---|---:|---:|---:|---|",
        f"| bare loop: decode + 3-channel JPEG encode, {r['processes']} processes | {r['bare_images_per_s']:.1f} "
        "| 1.00 | | |",
    ]
    for label, run in r["runs"].items():
        ratio = run["steady_images_per_s"] / r["bare_images_per_s"]
        tries = "; ".join(
            f"{n} scans {', '.join(f'{w:.1f}' for w in run['walls'][k])} s"
            for k, n in (("small", r["small"]), ("all", r["images"]))
        )
        lines.append(
            f"| `chromata run`, {label} | {run['steady_images_per_s']:.2f} | **{ratio:.3f}** "
            f"| **{run['startup_s']:.1f} s** | {tries} |"
        )
    lines += [
        "",
        f"*images/s* is the steady state, ({r['images']} − {r['small']}) scans over the difference of the two runs' "
        f"fastest wall times, so start-up cancels; *start-up* is the {r['small']}-scan run's wall time less its "
        "images at that rate (engines, model, planning, the report, shutting down).",
        "",
        f"Start-up pieces of this tree, each in a fresh interpreter (fastest of {args.repeats}; the interpreter's "
        "own start is counted in the first row only):",
        "",
        "| piece | seconds |",
        "|---|---:|",
        *(f"| {name} | {sec:.2f} |" for name, sec in r["startup_pieces_s"].items()),
    ]
    return "\n".join(lines)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--images", type=int, default=80)
    ap.add_argument("--small", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="tries of each measurement; the fastest is used")
    ap.add_argument("--before", metavar="REV", help="also run the commands with the code of this commit")
    ap.add_argument("--warm", action="store_true",
                    help="also run this tree joining a Ray head and a Prefect server left running")  # fmt: skip
    ap.add_argument("--device", default="cpu", help="chromata run --device (auto or cuda on a GPU node)")
    ap.add_argument("--workers", type=int, default=1, help="chromata run --workers (actors; several per GPU)")


def check(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 < args.small < args.images:
        ap.error("--small must be between 0 and --images")
    installed_here(ap)


def installed_here(ap: argparse.ArgumentParser) -> None:
    """ "This tree" runs the installed chromata (an editable install maps ``chromata.flows`` and ``.actors``):
    refuse to measure if that install is another checkout's."""
    import chromata

    if not Path(chromata.__file__).resolve().is_relative_to(ROOT):
        ap.error(f"the installed chromata is {Path(chromata.__file__).parent}, not this tree: pip install -e {ROOT}")


def main() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _report import main_for

    return main_for("throughput", __doc__, add_arguments, measure, markdown, check)


if __name__ == "__main__":
    main()
