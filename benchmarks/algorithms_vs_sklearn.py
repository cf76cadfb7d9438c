"""The built-in algorithms against scikit-learn on the same splits and seeds.

For each data set bundled with scikit-learn (breast cancer: binary; iris, wine, digits:
multiclass; diabetes, linnerud's weight: regression), a synthetic many-classes-few-rows set
(``make_classification``: 20 classes, 15 rows each) and each seed, one stratified
(classification) 80/20 train/test split
is written as CSV channels and trained on by our built-in job (in process, through
``orchestrator.algorithms.train.main``, with default hyperparameters) and by scikit-learn
(standardised features; LogisticRegression / LinearRegression / Ridge / MLPClassifier /
MLPRegressor). Both are scored on the same test rows. With its defaults and no validation
channel, linear-learner chooses among its ``num_models`` by 5-fold cross-validation over all
its train rows and refits on all of them; mlp holds 10% out for early stopping and, for
binary, threshold selection; scikit-learn trains on all of them. Prints the mean over seeds of accuracy, F1, AUC, RMSE and training
time, and the gap (accuracy points, RMSE ratio). Goal for linear-learner: accuracy >=
scikit-learn's, RMSE <= 1.01x scikit-learn's, on every set.

    python benchmarks/algorithms_vs_sklearn.py [--seeds 5] [--only iris] [--hp epochs=200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_linnerud,
    load_wine,
    make_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from orchestrator.algorithms import train

CASES: list[tuple[str, str, str, Any]] = [
    ("breast-cancer", "binary_classifier", "linear-learner", lambda s: LogisticRegression()),
    ("breast-cancer", "binary_classifier", "mlp", lambda s: MLPClassifier(random_state=s)),
    ("iris", "multiclass_classifier", "linear-learner", lambda s: LogisticRegression()),
    ("iris", "multiclass_classifier", "mlp", lambda s: MLPClassifier(random_state=s)),
    ("diabetes", "regressor", "linear-learner", lambda s: LinearRegression()),
    ("diabetes", "regressor", "mlp", lambda s: MLPRegressor(random_state=s, max_iter=2000)),
    ("wine", "multiclass_classifier", "linear-learner", lambda s: LogisticRegression()),
    ("digits", "multiclass_classifier", "linear-learner", lambda s: LogisticRegression()),
    ("many-classes", "multiclass_classifier", "linear-learner", lambda s: LogisticRegression()),
    ("linnerud", "regressor", "linear-learner", lambda s: Ridge()),
]


def _linnerud(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_linnerud(return_X_y=True)
    return x, y[:, 0]  # weight, from chins, sit-ups and jumps


def _many_classes(return_X_y: bool = True) -> tuple[np.ndarray, np.ndarray]:
    x, y = make_classification(
        n_samples=300,
        n_features=20,
        n_informative=12,
        n_redundant=4,
        n_classes=20,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    return x, y


LOADERS: dict[str, Any] = {
    "breast-cancer": load_breast_cancer,
    "iris": load_iris,
    "diabetes": load_diabetes,
    "wine": load_wine,
    "digits": load_digits,
    "many-classes": _many_classes,
    "linnerud": _linnerud,
}


def ours(
    algorithm: str, ptype: str, xy: tuple[np.ndarray, ...], seed: int, extra: dict[str, str]
) -> dict[str, float]:
    x_tr, x_te, y_tr, y_te = xy
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for channel, x, y in (("train", x_tr, y_tr), ("test", x_te, y_te)):
            (root / "input" / "data" / channel).mkdir(parents=True)
            np.savetxt(
                root / "input/data" / channel / "data.csv", np.column_stack([y, x]), delimiter=","
            )
        (root / "input" / "config").mkdir(parents=True)
        hps = {"predictor_type": ptype, "seed": str(seed), **extra}
        (root / "input/config/hyperparameters.json").write_text(json.dumps(hps))
        env = {train.ML_ROOT_ENV: str(root), train.ALGORITHM_ENV: algorithm}
        with contextlib.redirect_stdout(io.StringIO()):
            if train.main(env) != 0:
                raise RuntimeError((root / "output" / "failure").read_text())
        doc = json.loads((root / "model" / "evaluation.json").read_text())
    test = doc["test"]
    out = {"seconds": doc["training_seconds"]}
    if ptype == "regressor":
        out["rmse"] = test["rmse"]
    else:
        out["accuracy"] = test["accuracy"]
        out["f1"] = test["f1"] if ptype == "binary_classifier" else test["macro_f1"]
        if ptype == "binary_classifier":
            out["auc"] = test["auc"]
    return out


def theirs(estimator: Any, ptype: str, xy: tuple[np.ndarray, ...]) -> dict[str, float]:
    x_tr, x_te, y_tr, y_te = xy
    model = make_pipeline(StandardScaler(), estimator)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_tr, y_tr)
    out = {"seconds": time.perf_counter() - started}
    pred = model.predict(x_te)
    if ptype == "regressor":
        out["rmse"] = float(np.sqrt(mean_squared_error(y_te, pred)))
        return out
    out["accuracy"] = float(accuracy_score(y_te, pred))
    binary = ptype == "binary_classifier"
    out["f1"] = float(f1_score(y_te, pred, average="binary" if binary else "macro"))
    if binary:
        out["auc"] = float(roc_auc_score(y_te, model.predict_proba(x_te)[:, 1]))
    return out


def cell(
    rows: list[tuple[dict[str, float], dict[str, float]]],
    key: str,
    scale: float = 1.0,
    fmt: str = ".4f",
) -> str:
    if key not in rows[0][0]:
        return "-"
    a = np.mean([r[0][key] for r in rows]) * scale
    b = np.mean([r[1][key] for r in rows]) * scale
    return f"{a:{fmt}} / {b:{fmt}}"


def gap(rows: list[tuple[dict[str, float], dict[str, float]]]) -> str:
    """Accuracy points ours - theirs, or the RMSE ratio ours / theirs, with the goal's verdict."""
    if "rmse" in rows[0][0]:
        ratio = np.mean([r[0]["rmse"] for r in rows]) / np.mean([r[1]["rmse"] for r in rows])
        return f"{ratio:.3f}x {'met' if ratio <= 1.01 else 'NOT met'}"
    points = 100 * np.mean([r[0]["accuracy"] - r[1]["accuracy"] for r in rows])
    return f"{points:+.2f} {'met' if points >= -1e-9 else 'NOT met'}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--hp", action="append", default=[], help="KEY=VALUE for ours")
    args = parser.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.hp)
    print(
        "| data set | ours | scikit-learn | accuracy (ours / sk) | F1 (ours / sk) "
        "| AUC (ours / sk) | RMSE (ours / sk) | train s (ours / sk) | gap, goal |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, ptype, algorithm, make in CASES:
        if args.only not in f"{name}/{algorithm}":
            continue
        x, y = LOADERS[name](return_X_y=True)
        rows: list[tuple[dict[str, float], dict[str, float]]] = []
        for seed in range(args.seeds):
            xy = train_test_split(
                x, y, test_size=0.2, random_state=seed, stratify=None if ptype == "regressor" else y
            )
            rows.append((ours(algorithm, ptype, xy, seed, extra), theirs(make(seed), ptype, xy)))

        print(
            f"| {name} | {algorithm} | {type(make(0)).__name__} | {cell(rows, 'accuracy', 100, '.2f')} "
            f"| {cell(rows, 'f1')} | {cell(rows, 'auc')} | {cell(rows, 'rmse', 1, '.2f')} | {cell(rows, 'seconds', 1, '.2f')} | {gap(rows)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
