"""The scikit-learn baseline of the model benchmark.

    python ml_baseline.py DIR     # DIR holds train.parquet and test.parquet

Loads both into numpy (not timed), standardises with the training rows'
statistics (as AutoLake does), times `LogisticRegression().fit` (lbfgs, the
default) and prints `{"seconds": …, "accuracy": …}` on the test rows.
"""

import json
import os
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.linear_model import LogisticRegression


def load(path):
    table = pq.read_table(path)
    x = np.column_stack([table.column(f"c{i}").to_numpy() for i in range(32)])
    y = table.column("label").to_numpy(zero_copy_only=False).astype(bool)
    return x, y


def main():
    folder = sys.argv[1]
    x, y = load(os.path.join(folder, "train.parquet"))
    xt, yt = load(os.path.join(folder, "test.parquet"))
    mean, std = x.mean(axis=0), x.std(axis=0)
    x, xt = (x - mean) / std, (xt - mean) / std
    started = time.perf_counter()
    model = LogisticRegression().fit(x, y)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "accuracy": float((model.predict(xt) == yt).mean())}))


if __name__ == "__main__":
    main()
