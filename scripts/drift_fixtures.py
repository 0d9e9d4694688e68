#!/usr/bin/env python3
"""Generates the drift-test fixtures: samples drawn with numpy, expected
values from scipy (ks_2samp, wasserstein_distance, chisquare,
jensenshannon) and from Evidently's definitions of PSI, normalised
Wasserstein and binned Jensen-Shannon, written out below with numpy.

    .venv/bin/pip install numpy scipy
    .venv/bin/python scripts/drift_fixtures.py > udfs/tests/fixtures/drift.json

The output is committed; the test suite reads it and does not need Python.
"""

import json
import sys

import numpy as np
import scipy
from scipy import stats
from scipy.spatial import distance


def unique_keys(reference, current):
    """Evidently's get_unique_not_nan_values_list_from_series."""
    return list(set(reference) | set(current))


def counts(sample, keys):
    values, n = np.unique(np.asarray(sample), return_counts=True)
    found = dict(zip(values.tolist(), n.tolist()))
    return np.array([found.get(k, 0) for k in keys], dtype=float)


def floor_zeroes(percents):
    smallest = min(percents[percents != 0])
    np.place(percents, percents == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)


def binned(reference, current, numeric, feel_zeroes):
    """Evidently's get_binned_data."""
    if numeric and len(np.unique(reference)) > 20:
        bins = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        r = np.histogram(reference, bins)[0] / len(reference)
        c = np.histogram(current, bins)[0] / len(current)
    else:
        keys = unique_keys(reference.tolist(), current.tolist())
        r = counts(reference, keys) / len(reference)
        c = counts(current, keys) / len(current)
    if feel_zeroes:
        floor_zeroes(r)
        floor_zeroes(c)
    return r, c


def psi(reference, current, numeric):
    r, c = binned(reference, current, numeric, True)
    return float(np.sum((r - c) * np.log(r / c)))


def js(reference, current, numeric):
    r, c = binned(reference, current, numeric, False)
    return float(distance.jensenshannon(r, c))


def wasserstein(reference, current):
    norm = max(np.std(reference), 0.001)
    return float(stats.wasserstein_distance(reference, current) / norm)


def chi2(reference, current):
    """Evidently's chisquare test: current counts against reference counts
    scaled to the current sample's size."""
    keys = unique_keys(reference.tolist(), current.tolist())
    f_exp = counts(reference, keys) * (len(current) / len(reference))
    f_obs = counts(current, keys)
    if np.any(f_exp == 0):
        # A category the reference never saw: scipy divides by zero.
        return float("inf"), 0.0
    res = stats.chisquare(f_obs, f_exp)
    return float(res.statistic), float(res.pvalue)


def ks(reference, current):
    res = stats.ks_2samp(reference, current)
    exact = max(len(reference), len(current)) <= 10000
    return float(res.statistic), float(res.pvalue), exact


def num(x):
    """JSON has no infinities or NaN: those are written as strings."""
    x = float(x)
    return x if np.isfinite(x) else str(x)


def numeric_case(name, reference, current):
    reference = np.round(np.asarray(reference, dtype=float), 6)
    current = np.round(np.asarray(current, dtype=float), 6)
    ks_stat, ks_p, exact = ks(reference, current)
    return {
        "name": name,
        "kind": "numeric",
        "reference": reference.tolist(),
        "current": current.tolist(),
        "expected": {
            "psi": psi(reference, current, True),
            "js": js(reference, current, True),
            "wasserstein": wasserstein(reference, current),
            "ks": {"statistic": num(ks_stat), "p_value": num(ks_p), "exact": exact},
        },
    }


def categorical_case(name, reference, current):
    reference = np.asarray(reference, dtype=str)
    current = np.asarray(current, dtype=str)
    stat, p = chi2(reference, current)
    return {
        "name": name,
        "kind": "categorical",
        "reference": reference.tolist(),
        "current": current.tolist(),
        "expected": {
            "psi": psi(reference, current, False),
            "js": js(reference, current, False),
            "chi2": {"statistic": num(stat), "p_value": num(p)},
        },
    }


def main():
    rng = np.random.default_rng(20261126)
    cases = [
        numeric_case("normal_shifted", rng.normal(0, 1, 2000), rng.normal(0.3, 1.2, 1500)),
        numeric_case("normal_same", rng.normal(5, 2, 1000), rng.normal(5, 2, 1000)),
        numeric_case("ties_integers", rng.integers(0, 40, 3000), rng.integers(5, 45, 2500)),
        numeric_case("few_values", rng.integers(0, 5, 800), rng.integers(0, 6, 600)),
        numeric_case("heavy_tails", rng.standard_cauchy(1200), rng.standard_cauchy(900) * 1.5),
        numeric_case("pareto", rng.pareto(1.5, 5000), rng.pareto(1.2, 4000)),
        numeric_case("tiny", [1.5, 2.0, 9.0], [2.5, 3.0, 4.0, 10.0]),
        numeric_case("single_values", [3.0], [4.0]),
        numeric_case("constant_reference", np.full(500, 7.0), rng.normal(7, 1, 400)),
        numeric_case("constant_both", np.full(300, 1.0), np.full(200, 1.0)),
        numeric_case("equal_sizes", rng.exponential(1.0, 700), rng.exponential(1.1, 700)),
        numeric_case("asymptotic", rng.normal(0, 1, 12000), rng.normal(0.05, 1, 3000)),
        numeric_case("asymptotic_large", rng.gamma(2.0, 1.0, 15000), rng.gamma(2.1, 1.0, 11000)),
        categorical_case(
            "categories_shifted",
            rng.choice(["a", "b", "c", "d"], 1000, p=[0.4, 0.3, 0.2, 0.1]),
            rng.choice(["a", "b", "c", "d"], 800, p=[0.3, 0.3, 0.2, 0.2]),
        ),
        categorical_case(
            "category_only_in_reference",
            rng.choice(["x", "y", "z"], 500),
            rng.choice(["x", "y"], 400),
        ),
        categorical_case(
            "category_only_in_current",
            rng.choice(["x", "y"], 500),
            rng.choice(["x", "y", "new"], 400),
        ),
        categorical_case("one_category", ["only"] * 50, ["only"] * 30),
    ]
    json.dump(
        {
            "generator": "scripts/drift_fixtures.py",
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "cases": cases,
        },
        sys.stdout,
        indent=1,
        allow_nan=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
