"""Which model and training settings make the most of our compute? Equal-time runs, compared by
real coding.

    python benchmarks/efficiency_study.py                  # all variants, 5 minutes each
    python benchmarks/efficiency_study.py --minutes 1 --only baseline,"simplified GDN" --out /tmp/s
    python benchmarks/efficiency_study.py --render      # efficiency.md again from the JSON
    python benchmarks/efficiency_study.py --minutes 4 --only "high-rate lambdas" --add   # one more

Every variant changes one thing against the baseline (the shipped widths and training
settings) and trains from scratch for the same wall time on this machine: its number of steps
is the budget divided by its own measured seconds per step, so a slower variant gets fewer
steps, as it would in a real run. Each is then frozen into its integer coding model and codes
the first Kodak images at q10/50/90 into real files (bytes and decoded pixels, the same path as
`aecompress encode`), with JPEG measured on the same images for scale. Also recorded: the
decode time of one image (the codec's budget is 0.35 s) and the training seconds per step.

Short runs measure how fast each variant learns, the regime our CPU budget lives in; a ranking
after minutes need not hold after GPU-days. Writes results/efficiency.json and efficiency.md.
Training and coding import torch where they run, so `--render` needs numpy alone.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from aecompress import metrics
from aecompress.config import ModelConfig

if TYPE_CHECKING:
    from aecompress.train import TrainConfig

HERE = Path(__file__).resolve().parent
KODAK = HERE.parent.parent / "shared" / "data" / "kodak"
QUALITIES = (10, 50, 90)

BASELINE_MODEL = {"N": 64, "M": 128, "lambda_min": 0.0003, "lambda_max": 0.3}
BASELINE = {"warmup": 100, "eval_every": 0, "checkpoint_minutes": 1e9}
VARIANTS = {  # name -> (what changes, TrainConfig fields, ModelConfig fields), each against the baseline
    "baseline": ("N=64, M=128, GDN, batch 8 of 128 px, lr 7e-4", {}, {}),
    "N96": ("transforms 96 channels wide", {}, {"N": 96}),
    "M192": ("latent y 192 channels", {}, {"M": 192}),
    "simplified GDN": ("absolute values instead of the root of squares", {}, {"simplified_gdn": True}),
    "batch 16": ("16 crops per step", {"batch": 16}, {}),
    "crop 192": ("crops of 192 px, batch 4 (about the same pixels per step)", {"crop": 192, "batch": 4}, {}),
    "lr 1.4e-3": ("twice the peak learning rate", {"lr": 1.4e-3}, {}),
    "high-rate lambdas": ("quality axis sampled as u^0.5 (high qualities 3x as often as low)",
                          {"quality_power": 0.5}, {}),
}


def train_config(name: str) -> TrainConfig:
    from aecompress.train import TrainConfig

    _, fields, model = VARIANTS[name]
    return TrainConfig(model=ModelConfig(**{**BASELINE_MODEL, **model}), **{**BASELINE, **fields})


def seconds_per_step(cfg: TrainConfig, work: Path) -> float:
    """Measured, not estimated: the logged clock between steps 50 and 100 of a throwaway run."""
    from aecompress.train import train

    probe = replace(cfg, out=str(work / "probe"), steps=101, finetune=0)
    train(probe, resume=False, progress=False)
    log = [json.loads(line) for line in (work / "probe" / "log.jsonl").read_text().splitlines()]
    hours = {r["step"]: r["hours"] for r in log}
    shutil.rmtree(work / "probe")
    return (hours[100] - hours[50]) * 3600 / 50


def decode_seconds(model, rgb: np.ndarray) -> float:
    from aecompress import bench, codec, zoo

    coding = zoo.freeze(model)
    data = codec.encode(rgb, 50, model=coding)
    return bench.timed(lambda d: codec.decode(d, model=coding), data, repeats=3)[1]


def jpeg_curve(kodak: Path, n: int, work: Path) -> dict:
    """Pillow JPEG on the same images, through the benchmark's own sweep (real files)."""
    from aecompress import bench

    jpeg = next(c for c in bench.pillow_codecs() if c.name == "jpeg")
    results = bench.sweep(jpeg, bench.load_images(kodak, n), work / "files", repeats=1).to_json()["results"]
    shutil.rmtree(work / "files")
    return {"bpp": results["bpp"], "psnr": results["psnr-rgb"]}


def run_variant(cfg: TrainConfig, minutes: float, work: Path, files: list[Path]) -> dict:
    from aecompress.train import evaluate, train

    step_s = seconds_per_step(cfg, work)
    steps = max(200, int(minutes * 60 / step_s))
    cfg = replace(cfg, out=str(work / "run"), steps=steps, finetune=steps // 20)
    start = time.time()
    model = train(cfg, resume=False, progress=False)
    train_minutes = (time.time() - start) / 60
    shutil.rmtree(work / "run")
    rd = evaluate(model, files, QUALITIES)
    return {
        "steps": steps, "seconds_per_step": step_s, "train_minutes": train_minutes,
        "decode_s": decode_seconds(model.eval(), np.asarray(Image.open(files[0]).convert("RGB"))),
        "bpp": [rd[q]["bpp"] for q in QUALITIES], "psnr": [rd[q]["psnr"] for q in QUALITIES],
    }


def table(results: dict, jpeg: dict, qualities: list[int]) -> str:
    base = results.get("baseline")
    head = [f"q{q} bpp / dB" for q in qualities]
    lines = ["| variant | change | s/step | steps | " + " | ".join(head)
             + " | BD-rate vs baseline | BD-rate vs JPEG | decode s |",
             "|---" * (len(head) + 7) + "|"]
    for name, r in results.items():
        points = [f"{b:.3f} / {p:.2f}" for b, p in zip(r["bpp"], r["psnr"])]
        vs_base = metrics.bd_rate(base["bpp"], base["psnr"], r["bpp"], r["psnr"]) if base else None
        vs_jpeg = metrics.bd_rate(jpeg["bpp"], jpeg["psnr"], r["bpp"], r["psnr"])
        cells = [name, r["change"], f"{r['seconds_per_step']:.3f}", str(r["steps"]), *points,
                 "-" if name == "baseline" else _pct(vs_base), _pct(vs_jpeg), f"{r['decode_s']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="training time per variant")
    p.add_argument("--images", type=int, default=6, help="first N Kodak images to code")
    p.add_argument("--only", default="", help="comma-separated variant names")
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--render", action="store_true", help="only rewrite efficiency.md from the JSON")
    p.add_argument("--add", action="store_true",
                   help="keep the variants already in results/efficiency.json (same --minutes and images)")
    args = p.parse_args()
    if args.render:
        return render(args.out)
    import torch

    from aecompress.train import list_images

    names = [n for n in args.only.split(",") if n] or list(VARIANTS)
    if unknown := set(names) - set(VARIANTS):
        raise SystemExit(f"unknown variant(s): {', '.join(sorted(unknown))}")
    files = list_images(KODAK)[: args.images]
    work = Path("runs/study")
    jpeg = jpeg_curve(KODAK, args.images, work)
    results = {}
    previous = args.out / "results" / "efficiency.json"
    if args.add and previous.exists():
        kept = json.loads(previous.read_text())
        if kept["minutes_per_variant"] != args.minutes or len(kept["images"]) != args.images:
            raise SystemExit("--add: the recorded study used other --minutes or --images")
        results = {k: v for k, v in kept["variants"].items() if k not in names}
    for name in names:
        change = VARIANTS[name][0]
        print(f"{name}: {change}", flush=True)
        results[name] = {"change": change, **run_variant(train_config(name), args.minutes, work, files)}
        r = results[name]
        print(f"  {r['steps']} steps at {r['seconds_per_step']:.3f} s, "
              + ", ".join(f"q{q} {b:.3f} bpp {s:.2f} dB" for q, b, s in zip(QUALITIES, r["bpp"], r["psnr"])),
              flush=True)
    out = args.out
    (out / "results").mkdir(parents=True, exist_ok=True)
    record = {"minutes_per_variant": args.minutes, "images": [f.name for f in files],
              "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
              "qualities": QUALITIES, "jpeg": jpeg, "variants": results}
    (out / "results" / "efficiency.json").write_text(json.dumps(record, indent=1) + "\n")
    render(out)


def render(out: Path) -> None:
    """efficiency.md from results/efficiency.json, nothing measured."""
    md = markdown(json.loads((out / "results" / "efficiency.json").read_text()))
    (out / "efficiency.md").write_text(md)
    print(md)


def markdown(record: dict) -> str:
    minutes, n, qualities = record["minutes_per_variant"], len(record["images"]), record["qualities"]
    return (f"# Efficiency study: what to train on our compute\n\n"
            f"Generated by `python benchmarks/efficiency_study.py --minutes {minutes:g}` "
            f"({record['machine']}). Every variant trains from scratch for {minutes:g} minutes "
            f"of wall time on this machine (steps = budget / its measured s/step; the last 5% "
            f"fine-tune the entropy path), then codes the first {n} Kodak images at "
            f"q{', q'.join(map(str, qualities))} into real files. BD-rates use these three points "
            f"(negative: fewer bits at equal PSNR; n/a where the PSNR ranges do not overlap); JPEG "
            f"is Pillow's, 4:2:0, on the same images. Decode: one image at q50, median of 3. One run "
            f"per variant: differences of a few percent are within run-to-run noise, and a ranking "
            f"after minutes of training need not hold after days.\n\n"
            f"{table(record['variants'], record['jpeg'], qualities)}\n")


if __name__ == "__main__":
    main()
