"""Every file decodes to the same symbols everywhere: the core promise of the format."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aecompress import codec

from conftest import GOLDEN, golden_model_for
from make_golden import symbols_digest

EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
OTHER_KERNELS = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}  # torch's float kernels
OTHER_BLAS = {"OPENBLAS_CORETYPE": "Prescott"}  # numpy's: SSE3 kernels, other sums of floats

DECODE_IN_CHILD = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from aecompress import codec
from conftest import GOLDEN, golden_model_for
from make_golden import symbols_digest
out = {{}}
for name in sorted({names!r}):
    model = golden_model_for(name)
    data = (GOLDEN / name).read_bytes()
    _, _, latents = codec.read(data, model=model)
    pixels = np.asarray(codec.decode(data, model=model, device={device!r}))
    out[name] = [symbols_digest(latents), pixels.tolist()]
print(json.dumps(out))
"""


def decode_in_child(env_extra: dict, device: str = "cpu") -> dict:
    script = DECODE_IN_CHILD.format(tests=str(Path(__file__).parent), names=list(EXPECTED), device=device)
    env = {**os.environ, **env_extra}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=300, check=True)
    return json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_file_still_decodes(name):
    model = golden_model_for(name)
    data = (GOLDEN / name).read_bytes()
    _, _, latents = codec.read(data, model=model)
    assert symbols_digest(latents) == EXPECTED[name]
    codec.decode(data, model=model)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_numpy_and_torch_transforms_decode_alike(name):
    """The torch network (CUDA, the encoder search) and the numpy transforms read the same
    weights: the same symbols, pixels within a rounding step."""
    model, data = golden_model_for(name), (GOLDEN / name).read_bytes()
    a = np.asarray(codec.decode(data, model=model, device="cpu"), dtype=int)
    b = np.asarray(codec.decode(data, model=model, device="torch"), dtype=int)
    assert np.abs(a - b).max() <= 1


def test_symbols_identical_with_one_and_two_torch_threads():
    before = torch.get_num_threads()
    try:
        digests = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name in sorted(EXPECTED):
                data = (GOLDEN / name).read_bytes()
                f, model, latents = codec.read(data, model=golden_model_for(name))
                digests.append(symbols_digest(latents))
                codec.decode(data, model=model, device="torch")
        assert digests[: len(EXPECTED)] == digests[len(EXPECTED) :] == [EXPECTED[n] for n in sorted(EXPECTED)]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_symbols_identical_with_perturbed_float_transforms(name):
    """Another device computes the float transforms slightly differently; symbols must not care."""
    model = golden_model_for(name)
    rng = np.random.default_rng(0)
    noisy = dataclasses.replace(model, state={k: (v * (1 + 1e-3 * rng.standard_normal(v.shape))).astype(v.dtype)
                                              for k, v in model.state.items()})
    data = (GOLDEN / name).read_bytes()
    _, _, latents = codec.read(data, model=noisy)
    assert symbols_digest(latents) == EXPECTED[name]
    a = np.asarray(codec.decode(data, model=noisy), dtype=int)
    b = np.asarray(codec.decode(data, model=model), dtype=int)
    assert np.abs(a - b).max() <= 2


@pytest.mark.parametrize("env,device", [({}, "cpu"), ({"OPENBLAS_NUM_THREADS": "1"}, "cpu"), (OTHER_BLAS, "cpu"),
                                        ({"OMP_NUM_THREADS": "1"}, "torch"), (OTHER_KERNELS, "torch")],
                         ids=["fresh-process", "one-thread", "other-blas-kernels", "torch-one-thread",
                              "torch-other-float-kernels"])
def test_symbols_identical_in_other_process_and_kernels(env, device):
    child = decode_in_child(env, device)
    for name in sorted(EXPECTED):
        digest, pixels = child[name]
        assert digest == EXPECTED[name]
        here = np.asarray(codec.decode((GOLDEN / name).read_bytes(), model=golden_model_for(name)), dtype=int)
        assert np.abs(np.asarray(pixels) - here).max() <= 1  # float g_s differs by rounding at most


def test_integer_h_s_in_bands_equals_one_pass(golden_model):
    from aecompress import exact

    z = np.random.default_rng(0).integers(-20, 20, (golden_model.config.N, 23, 9))
    whole = exact.h_s(golden_model.h_s, z, (90, 35), golden_model.config.levels, band=1000)
    for band in (1, 2, 5):
        banded = exact.h_s(golden_model.h_s, z, (90, 35), golden_model.config.levels, band=band)
        assert all(np.array_equal(a, b) for a, b in zip(whole, banded))
