"""The built-in mlp's validation accuracy on scikit-learn's digits over a fixed grid, cached.

Used by ``benchmarks/tuning.py bayes``: running TensorFlow trials 20 seeds x 2 strategies x
up to 200 trials is far too slow here, so each grid point is trained once, for real, with the
built-in mlp's own network and training loop (``orchestrator.algorithms.model.build``/``fit``,
5 epochs, batch 64, Adam, seed 0) on a fixed 70/30 stratified split of digits; a trial then
reads the accuracy of the grid point nearest its hyperparameters. The table is cached as JSON
under the temp dir (never in git); delete it to measure again.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

LEARNING_RATES = [10**e for e in (-4.0, -3.5, -3.0, -2.5, -2.0, -1.5, -1.0)]
HIDDEN_UNITS = [16, 32, 64, 128]
NUM_LAYERS = [1, 2, 3]
DROPOUTS = [0.0, 0.3, 0.6]
EPOCHS = 5
CACHE = Path(tempfile.gettempdir()) / "orch-bench-tuning" / "mlp_digits.json"


def _key(lr: float, hu: int, nl: int, do: float) -> str:
    return f"{lr:.6g}|{hu}|{nl}|{do:g}"


def build_table() -> dict[str, float]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from orchestrator.algorithms import model as model_lib
    from orchestrator.algorithms.hyperparameters import parse_hyperparameters

    x, y = load_digits(return_X_y=True)
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    table: dict[str, float] = {}
    started = time.perf_counter()
    grid = list(itertools.product(LEARNING_RATES, HIDDEN_UNITS, NUM_LAYERS, DROPOUTS))
    for i, (lr, hu, nl, do) in enumerate(grid):
        hp = parse_hyperparameters(
            "mlp",
            {
                "predictor_type": "multiclass_classifier",
                "num_classes": "10",
                "learning_rate": str(lr),
                "hidden_units": str(hu),
                "num_layers": str(nl),
                "dropout": str(do),
                "epochs": str(EPOCHS),
                "mini_batch_size": "64",
                "early_stopping_patience": "0",
            },
        )
        model_lib.seed_everything(0)
        net = model_lib.build(hp, xt, 10)
        model_lib.fit(net, hp, model_lib.Scaling(), (xt, yt), None, emit=lambda n, v: None)
        predicted = net.predict(xv.astype(np.float32), verbose=0).argmax(axis=1)
        table[_key(lr, hu, nl, do)] = float((predicted == yv).mean())
        if (i + 1) % 25 == 0:
            print(f"  mlp table: {i + 1}/{len(grid)} ({time.perf_counter() - started:.0f} s)")
    return table


def load_table() -> dict[str, float]:
    if CACHE.exists():
        table: dict[str, float] = json.loads(CACHE.read_text())
        return table
    table = build_table()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(table))
    return table


def _nearest(values: list[float], v: float, log: bool = False) -> float:
    f: Callable[[float], float] = math.log if log else float
    return min(values, key=lambda c: abs(f(c) - f(v)))


def lookup(table: dict[str, float], hp: dict[str, str]) -> float:
    """The accuracy of the grid point nearest ``hp`` (each axis on its own scale)."""
    lr = _nearest(LEARNING_RATES, float(hp["learning_rate"]), log=True)
    hu = int(_nearest([float(h) for h in HIDDEN_UNITS], float(hp["hidden_units"]), log=True))
    nl = int(_nearest([float(n) for n in NUM_LAYERS], float(hp["num_layers"])))
    do = _nearest(DROPOUTS, float(hp["dropout"]))
    return table[_key(lr, hu, nl, do)]


if __name__ == "__main__":
    t = load_table()
    vals = sorted(t.values(), reverse=True)
    print(len(vals), vals[:10])
