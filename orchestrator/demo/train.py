"""The demo's training script, written against the SageMaker training contract.

Run by the training job: reads the ``train`` and ``test`` channels (CSV, label in the first
column), fits a scaled logistic regression, prints metrics as ``name=value`` lines, and saves
the model to ``SM_MODEL_DIR``. Imported by the inference server, which calls ``model_fn``.
"""

import argparse
import json
import os
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def load(channel: str) -> tuple[np.ndarray, np.ndarray]:
    directory = Path(os.environ[f"SM_CHANNEL_{channel.upper()}"])
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV file in channel {channel!r} ({directory})")
    data = np.vstack([np.loadtxt(f, delimiter=",", ndmin=2) for f in files])
    return data[:, 1:], data[:, 0]


def model_fn(model_dir: str) -> object:
    return joblib.load(Path(model_dir) / "model.joblib")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--max_iter", type=int, default=1000)
    args = parser.parse_args()

    x_train, y_train = load("train")
    x_test, y_test = load("test")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=args.C, max_iter=args.max_iter))
    model.fit(x_train, y_train)
    print(f"train_accuracy={model.score(x_train, y_train):.4f}")
    print(f"test_accuracy={model.score(x_test, y_test):.4f}")

    model_dir = Path(os.environ["SM_MODEL_DIR"])
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "params.json").write_text(json.dumps(vars(args)))


if __name__ == "__main__":
    main()
