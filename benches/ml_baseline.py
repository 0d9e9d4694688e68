"""The scikit-learn baseline of the model benchmark.

    python ml_baseline.py DIR [RUNS]   # DIR holds train.parquet and test.parquet

Loads both into numpy (not timed), standardises with the training rows'
statistics (as AutoLake does), times `LogisticRegression().fit` (lbfgs, the
default; the best of RUNS fits, 1 by default) and prints
`{"seconds": …, "accuracy": …, "iterations": …, "rss_growth_mb": …,
"version": …}`: accuracy on the test rows, lbfgs iterations, and the growth
of the peak resident set during a fit over the resident set before it
(Linux; null elsewhere).
"""

import json
import os
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import sklearn
from sklearn.linear_model import LogisticRegression


def load(path):
    table = pq.read_table(path)
    x = np.column_stack([table.column(f"c{i}").to_numpy() for i in range(32)])
    y = table.column("label").to_numpy(zero_copy_only=False).astype(bool)
    return x, y


def status(field):
    """A field of /proc/self/status in bytes, or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak():
    """Resets the peak resident set (VmHWM) and returns the current one."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return status("VmRSS:")


def main():
    folder = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    x, y = load(os.path.join(folder, "train.parquet"))
    xt, yt = load(os.path.join(folder, "test.parquet"))
    mean, std = x.mean(axis=0), x.std(axis=0)
    x, xt = (x - mean) / std, (xt - mean) / std
    best, growth, model = None, None, None
    for _ in range(max(runs, 1)):
        before = reset_peak()
        started = time.perf_counter()
        model = LogisticRegression().fit(x, y)
        seconds = time.perf_counter() - started
        peak = status("VmHWM:")
        if before is not None and peak is not None:
            grown = max(peak - before, 0) / 1048576
            growth = grown if growth is None else max(growth, grown)
        best = seconds if best is None else min(best, seconds)
    print(
        json.dumps(
            {
                "seconds": best,
                "accuracy": float((model.predict(xt) == yt).mean()),
                "iterations": int(model.n_iter_[0]),
                "rss_growth_mb": growth,
                "version": sklearn.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
