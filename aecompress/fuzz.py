"""Mutation fuzzing of the decoder: every damaged file must decode or fail with one clean error.

    python -m aecompress.fuzz [CASES] [--seed S]

Each case takes a valid .aec file, applies random mutations (bit flips, byte overwrites,
truncation, insertion, duplicated spans, header fields set to extremes) and, in half of the
cases, recomputes the CRC so that the damage reaches the parser, the entropy decoder and the
integer network. A case passes when decoding returns an image of the declared size or raises
DecodeError within the time limit; anything else (another exception, a hang, a MemoryError
under the address-space cap) is a failure.
"""

from __future__ import annotations

import argparse
import resource
import signal
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import codec, zoo

TIME_LIMIT_S = 5
MEMORY_CAP = 4 * 2**30  # bytes of address space for the whole fuzzing process


@dataclass(frozen=True)
class FuzzReport:
    cases: int
    outcomes: dict[str, int]  # decoded / rejected / failures by kind
    failures: list[str]
    seconds: float


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


def with_crc(data: bytes) -> bytes:
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4])) if len(data) >= 4 else data


def run(cases: int, seeds: list[bytes], model: zoo.CodingModel, seed: int = 0,
        max_pixels: int = 2**24) -> FuzzReport:
    rng = np.random.default_rng(seed)
    outcomes: Counter = Counter()
    failures: list[str] = []

    def alarm(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    start = time.perf_counter()
    try:
        for i in range(cases):
            data = mutate(seeds[i % len(seeds)], rng)
            if rng.random() < 0.5:
                data = with_crc(data)
            signal.alarm(TIME_LIMIT_S)
            try:
                image = codec.decode(data, model=model, max_pixels=max_pixels)
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
    return FuzzReport(cases, dict(outcomes), failures, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fuzz the .aec decoder with mutated golden files.")
    parser.add_argument("cases", type=int, nargs="?", default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    golden = Path(__file__).resolve().parent.parent / "tests" / "golden"
    model = zoo.load_file(golden / "tiny.pt")
    seeds = [p.read_bytes() for p in sorted(golden.glob("*.aec"))]
    report = run(args.cases, seeds, model, args.seed)
    print(f"{report.cases} cases in {report.seconds:.0f} s: " +
          ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())))
    for line in report.failures[:20]:
        print("  " + line)
    raise SystemExit(1 if report.failures else 0)


if __name__ == "__main__":
    main()
