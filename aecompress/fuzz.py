"""Mutation fuzzing of the decoder: every damaged file must decode or fail with one clean error.

    python -m aecompress.fuzz [CASES] [--seed S] [--golden tests/golden]

Each case takes a valid .aec file (the golden files, each with the model it was written with,
`models.json` beside them) and either applies random mutations (bit flips, byte overwrites,
truncation, insertion, duplicated spans, header fields set to extremes), recomputing the CRC in
half of those cases, or flips bits inside its sections and repacks it, so that the damage reaches
the parser, the entropy decoder, the integer
networks (h_s and every part of the context model) and g_s. A case passes when decoding returns
an image of the declared size or raises DecodeError within the time limit; anything else
(another exception, a hang, a MemoryError under the address-space cap) is a failure. The report
counts how far each case got: past the container, past the model check, through the entropy
decoding of z and y (with the context model's tables), to the pixels.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import codec, container, zoo

TIME_LIMIT_S = 5
MEMORY_CAP = 4 * 2**30  # bytes of address space for the whole fuzzing process


@dataclass(frozen=True)
class FuzzReport:
    cases: int
    outcomes: dict[str, int]  # decoded / rejected / failures by kind
    failures: list[str]
    seconds: float
    stages: dict[str, int]  # cases that got past each decoder stage, in order (STAGES)


STAGES = ("container", "model", "latents", "pixels")


class _Timeout(Exception):
    pass


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        op = int(rng.integers(6))
        pos = int(rng.integers(len(b))) if b else 0
        if op == 0 and b:
            b[pos] ^= 1 << int(rng.integers(8))
        elif op == 1 and b:
            b[pos] = int(rng.integers(256))
        elif op == 2:
            del b[pos:]
        elif op == 3:
            b[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
        elif op == 4 and b:
            end = min(len(b), pos + int(rng.integers(1, 32)))
            b[pos:pos] = b[pos:end]
        elif op == 5 and len(b) >= 16:  # width / height / quality to extremes
            field = int(rng.choice([6, 10, 14]))
            value = int(rng.choice([0, 1, 2**15, 2**16 - 1, 2**31, 2**32 - 1]))
            fmt = "<H" if field == 14 else "<I"
            struct.pack_into(fmt, b, field, value & (0xFFFF if field == 14 else 0xFFFFFFFF))
    return bytes(b)


def mutate_payload(data: bytes, rng: np.random.Generator) -> bytes:
    """Bit flips inside the sections of a valid file (or another quality in its header), repacked
    with valid lengths and CRC: damage that only the entropy decoder, the integer networks and the
    alpha check can catch."""
    f = container.unpack(data)
    if rng.random() < 0.25:  # another quality: valid streams, other gains in g_s
        return container.pack(container.AecFile(replace(f.header, quality=float(rng.integers(1, 101))), f.sections))
    sections = dict(f.sections)
    kind = list(sections)[int(rng.integers(len(sections)))]
    payload = bytearray(sections[kind])
    for _ in range(int(rng.integers(1, 9))):
        if payload:
            payload[int(rng.integers(len(payload)))] ^= 1 << int(rng.integers(8))
    sections[kind] = bytes(payload)
    return container.pack(container.AecFile(f.header, sections))


def with_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


def run(cases: int, seeds: list[tuple[bytes, zoo.CodingModel]], seed: int = 0,
        max_pixels: int = 2**24) -> FuzzReport:
    """Fuzz `cases` mutations of the seed files, each decoded with its seed's model."""
    rng = np.random.default_rng(seed)
    outcomes: Counter = Counter()
    stages: Counter = Counter()
    failures: list[str] = []

    def alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    start = time.perf_counter()
    try:
        for i in range(cases):
            original, model = seeds[i % len(seeds)]
            kind = rng.random()
            if kind < 1 / 3:
                data = mutate_payload(original, rng)
            else:
                data = mutate(original, rng)
                if kind < 2 / 3:
                    data = with_crc(data)
            signal.alarm(TIME_LIMIT_S)
            try:
                image = _decode_in_stages(data, model, max_pixels, stages)
                outcomes["decoded"] += 1
                if image.width * image.height > max_pixels:
                    raise AssertionError("decoded an image beyond the pixel limit")
            except codec.DecodeError:
                outcomes["rejected"] += 1
            except _Timeout:
                outcomes["timeout"] += 1
                failures.append(f"case {i}: over {TIME_LIMIT_S} s")
            except Exception as e:  # the failures this fuzzer exists to find
                outcomes[type(e).__name__] += 1
                failures.append(f"case {i}: {type(e).__name__}: {e}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return FuzzReport(cases, dict(outcomes), failures, time.perf_counter() - start,
                      {name: stages[name] for name in STAGES})


def _decode_in_stages(data: bytes, model: zoo.CodingModel, max_pixels: int, stages: Counter):
    """codec.decode, with a count of each stage a case gets past."""
    try:
        header = container.unpack(data, max_pixels).header
    except container.FormatError as e:
        raise codec.DecodeError(str(e)) from None
    stages["container"] += 1
    codec._model_for(header, model)
    stages["model"] += 1
    codec.read(data, model, max_pixels)  # z, h_s, the context model's parts, y
    stages["latents"] += 1
    image = codec.decode(data, model, max_pixels=max_pixels)
    stages["pixels"] += 1
    return image


def golden_seeds(folder: Path) -> list[tuple[bytes, zoo.CodingModel]]:
    """The .aec files of a folder, each with its model (`models.json`: file-name prefix -> weights)."""
    mapping = json.loads((folder / "models.json").read_text())
    models: dict[str, zoo.CodingModel] = {}
    seeds = []
    for path in sorted(folder.glob("*.aec")):
        weights = next((w for prefix, w in mapping["by_prefix"].items() if path.name.startswith(prefix)),
                       mapping["default"])
        model = models.setdefault(weights, zoo.load_file(folder / weights))
        seeds.append((path.read_bytes(), model))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description="Fuzz the .aec decoder with mutated golden files.")
    parser.add_argument("cases", type=int, nargs="?", default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--golden", type=Path, default=Path("tests/golden"),
                        help="folder of seed .aec files and their models.json (default: tests/golden)")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    report = run(args.cases, golden_seeds(args.golden), args.seed)
    print(f"{report.cases} cases in {report.seconds:.0f} s: " +
          ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())))
    print("got past: " + ", ".join(f"{k} {v}" for k, v in report.stages.items()))
    for line in report.failures[:20]:
        print("  " + line)
    raise SystemExit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
