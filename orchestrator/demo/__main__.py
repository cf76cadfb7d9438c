"""``make demo``: the whole product on the embedded default, end to end, in about a minute.

Starts a control plane (process backend, SQLite, local encrypted object store) in the
background on 127.0.0.1, trains the demo script on scikit-learn's breast-cancer data (80/20
train/test channels), deploys the model to an endpoint, sends the test rows over HTTP, prints
the accuracy and a few predictions, then deletes the endpoint and stops the server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from orchestrator.client import Client, Estimator

HERE = Path(__file__).parent


def write_data(root: Path, seed: int = 42) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    train_dir, test_dir = root / "train", root / "test"
    train_dir.mkdir(parents=True)
    test_dir.mkdir(parents=True)
    np.savetxt(train_dir / "train.csv", np.column_stack([y_tr, x_tr]), delimiter=",")
    np.savetxt(test_dir / "test.csv", np.column_stack([y_te, x_te]), delimiter=",")
    return train_dir, test_dir, x_te, y_te


def start_server(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = dict(os.environ)
    env.update(
        {
            "ORCH_HOME": str(work / "home"),
            "ORCH_CONFIG_DIR": str(work / "config"),
            "ORCH_SERVER__PORT": "0",
        }
    )
    ready = work / "server.url"
    with open(work / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "server", "--ready-file", str(ready)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            print((work / "server.log").read_text(), file=sys.stderr)
            raise SystemExit("the control plane did not start (log above)")
        time.sleep(0.05)
    return proc, ready.read_text().strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work-dir", default=".demo", help="scratch directory (wiped first)")
    args = parser.parse_args()
    work = Path(args.work_dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    started = time.monotonic()
    train_dir, test_dir, x_test, y_test = write_data(work / "data")
    server, url = start_server(work)
    print(f"== control plane on {url} (state and encrypted objects under {work / 'home'})")
    credentials = json.loads((work / "config" / "credentials.json").read_text())
    client = Client(url, credentials["api_key"])
    try:
        print("== training: scikit-learn LogisticRegression, script mode, process backend")
        estimator = Estimator(
            entry_point=str(HERE / "train.py"),
            hyperparameters={"C": 1.0, "max_iter": 5000},
            instance_count=1,
            metric_definitions=[
                {"Name": "train:accuracy", "Regex": r"train_accuracy=(\S+)"},
                {"Name": "test:accuracy", "Regex": r"test_accuracy=(\S+)"},
            ],
            base_job_name="demo-breast-cancer",
            client=client,
        )
        job = estimator.fit({"train": train_dir.as_uri(), "test": test_dir.as_uri()})
        assert job is not None
        took = (
            (job.TrainingEndTime - job.TrainingStartTime).total_seconds()
            if job.TrainingEndTime and job.TrainingStartTime
            else float("nan")
        )
        metrics = ", ".join(f"{m.MetricName}={m.Value:.4f}" for m in job.FinalMetricDataList)
        print(
            f"== job {job.TrainingJobName}: {job.TrainingJobStatus} in {took:.1f} s "
            f"({metrics}); model at {job.ModelArtifacts.S3ModelArtifacts}"
        )
        print("== deploying: Model -> EndpointConfig -> Endpoint")
        predictor = estimator.deploy(initial_instance_count=1)
        print(
            f"== endpoint {predictor.endpoint_name} is InService; sending "
            f"{len(x_test)} test rows over HTTP"
        )
        answer = predictor.predict(x_test)
        predictions = np.asarray(answer["predictions"], dtype=float)
        accuracy = float((predictions == y_test).mean())
        print(
            f"== test accuracy over HTTP: {accuracy:.4f} ({int((predictions == y_test).sum())}"
            f"/{len(y_test)} correct)"
        )
        for i in range(5):
            print(f"   row {i}: predicted {int(predictions[i])}, actual {int(y_test[i])}")
        print("== cleaning up: deleting the endpoint, config and model")
        predictor.delete_endpoint()
    finally:
        client.close()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"== done in {time.monotonic() - started:.1f} s; control plane stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
