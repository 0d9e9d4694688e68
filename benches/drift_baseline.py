"""The Python baseline of the drift benchmark: one test on the samples of
a Delta table, timed after the data is in numpy arrays.

    python drift_baseline.py ks|wasserstein|psi|js TABLE_PATH

Prints `seconds peak_mb statistic`. Definitions as Evidently's defaults:
scipy's ks_2samp and wasserstein_distance (normalised by the reference's
std), PSI and Jensen-Shannon on numpy.histogram bins with Sturges edges.
"""

import resource
import sys
import time

import numpy as np
from deltalake import DeltaTable
from scipy import stats
from scipy.spatial import distance


def binned(reference, current, floor):
    edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
    r = np.histogram(reference, edges)[0] / len(reference)
    c = np.histogram(current, edges)[0] / len(current)
    if floor:
        for p in (r, c):
            smallest = min(p[p != 0])
            np.place(p, p == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001)
    return r, c


def run(test, reference, current):
    if test == "ks":
        return stats.ks_2samp(reference, current).statistic
    if test == "wasserstein":
        return stats.wasserstein_distance(reference, current) / max(np.std(reference), 0.001)
    if test == "psi":
        r, c = binned(reference, current, True)
        return np.sum((r - c) * np.log(r / c))
    if test == "js":
        r, c = binned(reference, current, False)
        return distance.jensenshannon(r, c)
    raise SystemExit(f"unknown test {test}")


def main():
    test, path = sys.argv[1], sys.argv[2]
    table = DeltaTable(path).to_pyarrow_table(columns=["x", "is_current"])
    x = table.column("x").to_numpy()
    is_current = table.column("is_current").to_numpy(zero_copy_only=False)
    reference, current = x[~is_current], x[is_current]
    started = time.perf_counter()
    statistic = run(test, reference, current)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(seconds, peak_mb, float(statistic))


if __name__ == "__main__":
    main()
