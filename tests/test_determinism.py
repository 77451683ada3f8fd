"""Every file decodes to the same symbols everywhere: the core promise of the format."""

import copy
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
OTHER_KERNELS = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}

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
    pixels = np.asarray(codec.decode(data, model=model))
    out[name] = [symbols_digest(latents), pixels.tolist()]
print(json.dumps(out))
"""


def decode_in_child(env_extra: dict) -> dict:
    script = DECODE_IN_CHILD.format(tests=str(Path(__file__).parent), names=list(EXPECTED))
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


def test_symbols_identical_with_one_and_two_threads():
    before = torch.get_num_threads()
    try:
        digests = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for name in sorted(EXPECTED):
                _, _, latents = codec.read((GOLDEN / name).read_bytes(), model=golden_model_for(name))
                digests.append(symbols_digest(latents))
        assert digests[: len(EXPECTED)] == digests[len(EXPECTED) :] == [EXPECTED[n] for n in sorted(EXPECTED)]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_symbols_identical_with_perturbed_float_transforms(name):
    """Another device computes the float transforms slightly differently; symbols must not care."""
    model = golden_model_for(name)
    noisy = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in noisy.net.parameters():  # the integer networks are not used by coding
            p.mul_(1 + 1e-3 * torch.randn_like(p))
    data = (GOLDEN / name).read_bytes()
    _, _, latents = codec.read(data, model=noisy)
    assert symbols_digest(latents) == EXPECTED[name]
    a = np.asarray(codec.decode(data, model=noisy), dtype=int)
    b = np.asarray(codec.decode(data, model=model), dtype=int)
    assert np.abs(a - b).max() <= 2


@pytest.mark.parametrize("env", [{}, {"OMP_NUM_THREADS": "1"}, OTHER_KERNELS],
                         ids=["fresh-process", "one-thread", "other-float-kernels"])
def test_symbols_identical_in_other_process_and_kernels(env):
    child = decode_in_child(env)
    for name in sorted(EXPECTED):
        digest, pixels = child[name]
        assert digest == EXPECTED[name]
        here = np.asarray(codec.decode((GOLDEN / name).read_bytes(), model=golden_model_for(name)), dtype=int)
        assert np.abs(np.asarray(pixels) - here).max() <= 1  # float g_s differs by rounding at most


def test_integer_h_s_in_bands_equals_one_pass(golden_model):
    from aecompress import intnet

    z = np.random.default_rng(0).integers(-20, 20, (golden_model.config.N, 23, 9))
    whole = intnet.run_exact(golden_model.h_s, z, (90, 35), golden_model.config.levels, band=1000)
    for band in (1, 2, 5):
        banded = intnet.run_exact(golden_model.h_s, z, (90, 35), golden_model.config.levels, band=band)
        assert all(np.array_equal(a, b) for a, b in zip(whole, banded))
