"""Images per second of `aecompress encode --ray` on a local Ray cluster of 1 node and of 2,
against the local `aecompress encode -j 2` (and -j 1), on the same photos.

    python benchmarks/ray_throughput.py [--data ../shared/data/train] [--images 24] [--repeats 2]

The photos are the first Urban100 images of the training folder (never Kodak), scaled and
cropped to 768x512 PNGs. Each node of the cluster has 1 CPU, so 1 node runs 1 actor and
2 nodes run 2; both nodes live on this machine (tests/test_ray.py's LocalCluster), so they
share its cores. Every run is a fresh command, timed from start to end: start-up (Ray's
connection, the actors, the model) counts; the cluster's own start does not. The
configurations take turns, so that each round sees much the same load from whatever else the
machine runs. All runs must write the same bytes. Writes
benchmarks/results/ray_throughput.json, then prints a table from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ray_throughput.json"
SIZE = (768, 512)
sys.path.insert(0, str(ROOT / "tests"))


def photos(data: Path, count: int, folder: Path) -> list[Path]:
    """The first `count` Urban100 photos, scaled to cover SIZE and cropped to it at the centre."""
    folder.mkdir()
    out = []
    for src in sorted(data.glob("urban100_*.png"))[:count]:
        image = Image.open(src).convert("RGB")
        scale = max(SIZE[0] / image.width, SIZE[1] / image.height)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
        left, top = (image.width - SIZE[0]) // 2, (image.height - SIZE[1]) // 2
        out.append(folder / src.name)
        image.crop((left, top, left + SIZE[0], top + SIZE[1])).save(out[-1])
    if len(out) < count:
        raise SystemExit(f"{data} holds {len(out)} Urban100 photos, fewer than {count}")
    return out


def training_running() -> bool:
    """Whether an `aecompress train` process shares the machine (read from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"aecompress\0train\0" in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def timed(args: list[str], out: Path) -> dict:
    """Run `aecompress encode ... -d out -Q` in a fresh process: wall seconds, and the outputs."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "aecompress", "encode", *args, "-d", str(out), "-Q"], check=True,
                   timeout=1800)
    wall = time.perf_counter() - start
    return {"wall_s": round(wall, 2), "load_before": round(load, 2),
            "outputs": {p.name: p.read_bytes() for p in sorted(out.glob("*.aec"))}}


def worker_seconds(out: Path) -> float:
    """Mean seconds per image inside the actors, from the manifest."""
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return round(sum(r["seconds"] for r in rows) / len(rows), 3)


def measure(images: list[Path], work: Path, repeats: int) -> dict:
    from test_ray import LocalCluster

    runs, reference = [], None

    def record(config: str, nodes: int | None, result: dict, out: Path) -> None:
        nonlocal reference
        outputs = result.pop("outputs")
        reference = reference or outputs
        assert len(outputs) == len(images) and outputs == reference, f"{config}: other bytes than the first run"
        result.update(config=config, nodes=nodes, images_per_s=round(len(images) / result["wall_s"], 3))
        if nodes:  # and the rate once the actors run, from their own seconds per image
            result["worker_s_per_image"] = worker_seconds(out)
            result["steady_images_per_s"] = round(nodes / result["worker_s_per_image"], 3)
        runs.append(result)
        print(f"{config}: {result['wall_s']} s, {result['images_per_s']} images/s", file=sys.stderr)

    for repeat in range(repeats):  # the configurations in turn: each repeat sees much the same load
        for jobs in (1, 2):
            out = work / f"local-j{jobs}-{repeat}"
            record(f"local -j {jobs}", None, timed([*map(str, images), "-j", str(jobs)], out), out)
        for nodes in (1, 2):
            start = time.perf_counter()
            cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="r")), nodes=nodes)
            started = round(time.perf_counter() - start, 2)
            try:
                out = work / f"ray-{nodes}-{repeat}"
                result = timed([str(images[0].parent), "--ray", cluster.address], out)
            finally:
                cluster.stop()
                shutil.rmtree(cluster.temp_dir, ignore_errors=True)
            record(f"--ray, {nodes} node{'s' * (nodes > 1)}", nodes, dict(result, cluster_start_s=started), out)
    return {"runs": runs, "identical": True}


def table(results: dict) -> str:
    """Best of the repeats for each configuration."""
    best: dict[str, dict] = {}
    for run in results["runs"]:
        if run["config"] not in best or run["wall_s"] < best[run["config"]]["wall_s"]:
            best[run["config"]] = run
    lines = ["| configuration | wall s (best) | images/s | s/image in an actor | images/s once started | load before |",
             "|---|---|---|---|---|---|"]
    for config, run in best.items():
        worker, steady = run.get("worker_s_per_image"), run.get("steady_images_per_s")
        lines.append(f"| {config} | {run['wall_s']:.1f} | {run['images_per_s']:.3f} | "
                     f"{'-' if worker is None else f'{worker:.2f}'} | {'-' if steady is None else f'{steady:.3f}'} | "
                     f"{run['load_before']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--print", action="store_true", help="Only print the table of the committed JSON.")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its clusters
    if not args.print:
        import ray

        with tempfile.TemporaryDirectory() as tmp:
            images = photos(Path(args.data), args.images, Path(tmp) / "in")
            results = {
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
                            "training_process_running": training_running()},
                "images": {"count": len(images), "size": f"{SIZE[0]}x{SIZE[1]}",
                           "source": "Urban100 (training folder)"},
                "model": "default (zoo.load())", "options": "encode, default quality, -Q",
                **measure(images, Path(tmp), args.repeats),
            }
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(table(json.loads(RESULTS.read_text())))


if __name__ == "__main__":
    main()
