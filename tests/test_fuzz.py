"""Mutated golden files decode or fail with one clean error, at every stage of the decoder."""

from aecompress import fuzz

from conftest import GOLDEN


def test_mutation_fuzzing_reaches_every_decoder_stage_and_finds_no_crash():
    seeds = fuzz.golden_seeds(GOLDEN)
    report = fuzz.run(300, seeds, seed=1)
    assert report.failures == []
    assert report.outcomes.get("rejected", 0) > 0
    assert all(report.stages[name] > 0 for name in fuzz.STAGES), report.stages


def test_fuzzing_reaches_the_context_decoder():
    """Seeds written with a context model are decoded with it: damage gets past the weights check
    into its parts."""
    seeds = [(data, model) for data, model in fuzz.golden_seeds(GOLDEN) if model.context is not None]
    assert len(seeds) >= 4
    report = fuzz.run(120, seeds, seed=2)
    assert report.failures == []
    assert report.stages["latents"] > 0 and report.stages["pixels"] > 0, report.stages
