"""Every documented example runs: `make demo`'s module, the README's Python and shell snippets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from orchestrator.settings import get_settings
from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator.demo", "--work-dir", str(tmp_path / "demo")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"test accuracy over HTTP: (\S+)", out.stdout)
    assert m is not None, out.stdout
    assert float(m.group(1)) >= 0.95
    assert "control plane stopped" in out.stdout
    # Nothing left running: every replica and supervisor of the demo has exited.
    leftovers = list((tmp_path / "demo" / "home" / "work" / "endpoints").glob("*/*"))
    assert leftovers == []


def _data(tmp: Path) -> tuple[Path, Path]:
    x, y = load_breast_cancer(return_X_y=True)
    train, test = tmp / "train", tmp / "test"
    train.mkdir()
    test.mkdir()
    np.savetxt(train / "train.csv", np.column_stack([y[:450], x[:450]]), delimiter=",")
    np.savetxt(test / "test.csv", np.column_stack([y[450:], x[450:]]), delimiter=",")
    return train, test


def test_readme_python_example(
    server: RunningServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    block = re.search(r"```python\n(.*?)```", README, re.S)
    assert block is not None
    train, test = _data(tmp_path)
    code = (
        block.group(1)
        .replace("file:///path/to/train", train.as_uri())
        .replace("file:///path/to/test", test.as_uri())
    )
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("ORCH_ENDPOINT_URL", server.url)
    monkeypatch.setenv("ORCH_API_KEY", server.key)
    get_settings.cache_clear()
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        get_settings.cache_clear()
    printed = capsys.readouterr().out
    assert "{'predictions': [0.0]}" in printed  # the first row of the data set is malignant


def test_readme_shell_examples(server: RunningServer, tmp_path: Path) -> None:
    train, test = _data(tmp_path)
    env = {
        **server.env,
        "ORCH_ENDPOINT_URL": server.url,
        "ORCH_API_KEY": server.key,
        "COLUMNS": "200",
    }
    orch = [sys.executable, "-m", "orchestrator.cli"]

    def run(*args: str) -> str:
        out = subprocess.run(
            [*orch, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, f"orch {' '.join(args)}\n{out.stdout}\n{out.stderr}"
        return out.stdout

    job = json.loads(
        run(
            "-o",
            "json",
            "train",
            "orchestrator/demo/train.py",
            "--channel",
            f"train={train}",
            "--channel",
            f"test={test}",
            "--hp",
            "C=1.0",
        )
    )
    name = job["TrainingJobName"]
    assert job["TrainingJobStatus"] == "Completed"
    assert name in run("jobs", "list")
    assert "test_accuracy=" in run("jobs", "logs", name)
    run(
        "deploy",
        f"s3://orchestrator/training-jobs/{name}/output/model.tar.gz",
        "--name",
        "my-endpoint",
        "--program",
        "train.py",
        "--source",
        f"s3://orchestrator/{name}/source/sourcedir.tar.gz",
    )
    rows = tmp_path / "rows.csv"
    x, _ = load_breast_cancer(return_X_y=True)
    rows.write_text("\n".join(",".join(str(v) for v in r) for r in x[:3]))
    answer = json.loads(run("invoke", "my-endpoint", "--body", str(rows)))
    assert answer["predictions"] == [0.0, 0.0, 0.0]
    assert "its secret:" in run("keys", "create", "my-app", "--role", "invoke")
    run("endpoints", "delete", "my-endpoint")
    # The commands in the README are the ones tested here.
    for snippet in (
        "orch train orchestrator/demo/train.py --channel train=",
        "orch jobs logs JOB -f",
        "orch deploy s3://",
        "orch invoke my-endpoint --body rows.csv",
        "orch keys create my-app --role invoke",
        "orch endpoints delete my-endpoint",
    ):
        assert snippet in README
