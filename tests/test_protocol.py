"""The protocol's one home: folder names built and parsed by the same functions, used by the builder and readers."""

from __future__ import annotations

import pytest

from sbdbench import protocol
from sbdbench.protocol import GAUSSIAN, NoisyDir, noisy_dir_name, parse_clean_dir, parse_noisy_dir, resolution_in_name


@pytest.mark.parametrize("name, parsed", [
    ("synth_10000_poisson_0.02", NoisyDir("synth", "test", 10000, GAUSSIAN, 0.02)),
    ("PUNet_50000_poisson_0.025", NoisyDir("PUNet", "test", 50000, GAUSSIAN, 0.025)),
    ("synth_val_1000_poisson_0.01", NoisyDir("synth", "val", 1000, GAUSSIAN, 0.01)),
    ("real-lite_10000_poisson_laplace_0.03", NoisyDir("real-lite", "test", 10000, "laplace", 0.03)),
    ("my_set_train_2000_poisson_uniform_ball_0.01", NoisyDir("my_set", "train", 2000, "uniform_ball", 0.01)),
])
def test_noisy_names_round_trip(name, parsed):
    assert parse_noisy_dir(name) == parsed
    assert parse_noisy_dir(name, parsed.dataset) == parsed
    assert noisy_dir_name(parsed.dataset, parsed.n_points, parsed.sigma, parsed.noise, parsed.split) == name
    assert resolution_in_name(name) == parsed.n_points


@pytest.mark.parametrize("name", ["synth_10000_0.02", "synth_10000_poisson", "synth_poisson_0.02", "x_10000_poisson_0.0.2"])
def test_other_names_are_not_noisy_folders(name):
    assert parse_noisy_dir(name) is None


def test_dataset_filter_and_clean_dirs():
    assert parse_noisy_dir("synth_10000_poisson_0.02", "other") is None
    assert parse_clean_dir("10000_poisson") == 10000 and parse_clean_dir("10000_poisson_x") is None
    assert protocol.clean_rel_dir("synth", "test", 10000) == "synth/pointclouds/test/10000_poisson"
    assert protocol.noisy_rel_dir("synth", 10000, 0.01) == "examples/synth_10000_poisson_0.01"


def test_the_builder_writes_what_the_protocol_parses(tiny_synth):
    """Every folder of a real build parses back to a noisy set the dataset reports (split, N, kind, σ)."""
    folders = sorted(p.name for p in tiny_synth.examples_dir.iterdir() if p.is_dir())
    parsed = [parse_noisy_dir(name, tiny_synth.name) for name in folders]
    assert folders and all(parsed), folders
    test_sets = {(d.n_points, d.noise, d.sigma) for d in parsed if d.split == "test"}
    assert {(1000, GAUSSIAN, 0.01), (2000, GAUSSIAN, 0.02), (1000, "laplace", 0.02)} <= test_sets
    assert {d.split for d in parsed} == {"test", "val"}
    for n, noise, sigma in test_sets:
        assert sigma in tiny_synth.noise_levels(n, noise)
        assert tiny_synth.noisy_dir(n, sigma, noise).name == noisy_dir_name(tiny_synth.name, n, sigma, noise)
    assert tiny_synth.resolutions("test") == [1000, 2000]
    assert tiny_synth.clean_path("torus", 1000).parent.name == protocol.clean_dir_name(1000)


def test_metric_schema():
    assert protocol.METRICS[:1] == ("cd",) and set(protocol.SCALED_METRICS) < set(protocol.METRICS)
    assert protocol.reported_column("p2m") == "p2m_1e4" and protocol.REPORT_SCALE == 1e4
