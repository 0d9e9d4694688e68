"""Fixture datasets for the model tests, with scikit-learn's results on them.

    .venv/bin/python scripts/ml_fixtures.py   # needs numpy, pandas, scikit-learn

Writes tests/fixtures/ml/<name>.csv (numeric and categorical features, a few
nulls, a `split` column: train / test) and tests/fixtures/ml/expected.json:
for each dataset, the model type, target, and scikit-learn's metric on the
test rows after the same preprocessing AutoLake applies (mean imputation +
standardisation of numbers, one-hot of text ignoring unseen values):
accuracy for classifiers, R² for regressors, inertia (standardised space,
all rows) for k-means. The tests train through SQL on the train rows and
compare: accuracy within 1 point, R² within 0.01, inertia within 2%.
"""

import csv
import json
import os

import numpy as np
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "ml")
rng = np.random.default_rng(20261126)


def features(n):
    x1 = rng.normal(0, 1, n)
    x2 = rng.normal(5, 2, n)
    x3 = rng.uniform(-3, 3, n)
    cat = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1])
    return x1, x2, x3, cat


def with_nulls(values, share=0.03):
    values = values.astype(object)
    values[rng.random(len(values)) < share] = None
    return values


def write(name, columns, n):
    split = np.where(rng.random(n) < 0.75, "train", "test")
    columns = dict(columns, split=split)
    path = os.path.join(OUT, f"{name}.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns.keys())
        for row in zip(*columns.values()):
            w.writerow(["" if v is None else (f"{v:.10g}" if isinstance(v, float) else v) for v in row])
    return split


def preprocess(numeric, categorical):
    parts = [("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric)]
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), categorical))
    return ColumnTransformer(parts)


def frame(columns, names):
    import pandas as pd

    return pd.DataFrame({k: columns[k] for k in names})


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}
    n = 3000

    # Binary classification: a linear boundary with noise, a category shift.
    x1, x2, x3, cat = features(n)
    shift = np.select([cat == "north", cat == "south", cat == "east"], [0.8, -0.5, 0.2], -1.0)
    logit = 1.5 * x1 - 0.7 * (x2 - 5) + 0.5 * x3 + shift
    label = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    cols = {"x1": with_nulls(x1), "x2": with_nulls(x2), "x3": x3, "region": cat, "churned": label}
    split = write("binary", cols, n)
    expected["binary"] = classify(cols, split, "churned", ["x1", "x2", "x3"], ["region"])

    # Multiclass: three classes from two scores.
    x1, x2, x3, cat = features(n)
    s1 = 2 * x1 + 0.5 * x3
    s2 = -(x2 - 5) + np.where(cat == "west", 1.5, 0)
    klass = np.select([s1 > 1, s2 > 0.5], ["gold", "silver"], "bronze")
    noise = rng.random(n) < 0.05
    klass[noise] = rng.choice(["gold", "silver", "bronze"], noise.sum())
    cols = {"x1": x1, "x2": with_nulls(x2), "x3": x3, "region": cat, "tier": klass}
    split = write("multiclass", cols, n)
    expected["multiclass"] = classify(cols, split, "tier", ["x1", "x2", "x3"], ["region"])

    # Regression: linear part plus a smooth non-linear part.
    x1, x2, x3, cat = features(n)
    y = 3 * x1 - 2 * x2 + np.sin(x3) * 2 + np.where(cat == "east", 4.0, 0.0) + rng.normal(0, 0.5, n)
    cols = {"x1": with_nulls(x1), "x2": x2, "x3": x3, "region": cat, "spend": y}
    split = write("regression", cols, n)
    expected["regression"] = regress(cols, split, "spend", ["x1", "x2", "x3"], ["region"])

    # Clusters: four blobs in three dimensions.
    centres = np.array([[0, 0, 0], [5, 5, 0], [0, 6, 4], [6, 0, 5]], dtype=float)
    which = rng.integers(0, 4, n)
    points = centres[which] + rng.normal(0, 1, (n, 3))
    cols = {"a": points[:, 0], "b": points[:, 1], "c": points[:, 2]}
    write("clusters", cols, n)
    scaled = StandardScaler().fit_transform(points)
    km = KMeans(n_clusters=4, n_init=10, random_state=0).fit(scaled)
    expected["clusters"] = {"kmeans": {"k": 4, "inertia": float(km.inertia_)}}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2, sort_keys=True)
        f.write("\n")


def classify(cols, split, target, numeric, categorical):
    names = numeric + categorical
    df = frame(cols, names)
    y = np.asarray(cols[target])
    train, test = split == "train", split == "test"
    out = {}
    for kind, model in [
        ("logistic_regression", LogisticRegression(max_iter=2000)),
        ("mlp_classifier", MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=500, random_state=0)),
    ]:
        pipe = make_pipeline(preprocess(numeric, categorical), model).fit(df[train], y[train])
        out[kind] = {"target": target, "accuracy": float(accuracy_score(y[test], pipe.predict(df[test])))}
    return out


def regress(cols, split, target, numeric, categorical):
    names = numeric + categorical
    df = frame(cols, names)
    y = np.asarray(cols[target], dtype=float)
    train, test = split == "train", split == "test"
    out = {}
    for kind, model in [
        ("linear_regression", LinearRegression()),
        ("mlp_regressor", MLPRegressor(hidden_layer_sizes=(32, 16), max_iter=1000, random_state=0)),
    ]:
        pipe = make_pipeline(preprocess(numeric, categorical), model).fit(df[train], y[train])
        out[kind] = {"target": target, "r2": float(r2_score(y[test], pipe.predict(df[test])))}
    return out


if __name__ == "__main__":
    main()
