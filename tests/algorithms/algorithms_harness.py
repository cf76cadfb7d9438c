"""Helpers for the built-in algorithms' tests: ML roots on disk and running a job in process."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Job:
    """A finished training job: its ML root, exit code and stdout."""

    root: Path
    code: int
    stdout: str

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> str:
        return (self.root / "output" / "failure").read_text()

    def evaluation(self) -> dict[str, Any]:
        return dict(json.loads((self.model_dir / "evaluation.json").read_text()))

    def metrics(self) -> dict[str, float]:
        lines = (line.split("=", 1) for line in self.stdout.splitlines() if "=" in line)
        return {name: float(value) for name, value in lines}


def write_root(
    root: Path,
    hyperparameters: dict[str, str],
    channels: dict[str, str | bytes | dict[str, str | bytes]],
) -> Path:
    """An ML root; each channel is one file's text/bytes (``data.csv``) or {name: content}."""
    (root / "input" / "config").mkdir(parents=True, exist_ok=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    for channel, content in channels.items():
        files = content if isinstance(content, dict) else {"data.csv": content}
        directory = root / "input" / "data" / channel
        directory.mkdir(parents=True, exist_ok=True)
        for name, body in files.items():
            path = directory / name
            if isinstance(body, bytes):
                path.write_bytes(body)
            else:
                path.write_text(body)
    return root


def csv_text(x: np.ndarray, y: np.ndarray, header: list[str] | None = None) -> str:
    rows = [
        ",".join(repr(float(v)) for v in [label, *row]) for label, row in zip(y, x, strict=True)
    ]
    lines = ([",".join(header)] if header else []) + rows
    return "\n".join(lines) + "\n"


def run_job(root: Path, algorithm: str | None = None) -> Job:
    from orchestrator.algorithms import train

    env = {train.ML_ROOT_ENV: str(root)}
    if algorithm is not None:
        env[train.ALGORITHM_ENV] = algorithm
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = train.main(env)
    return Job(root, code, out.getvalue())


RunJob = Callable[[str, dict[str, str], dict[str, Any]], Job]
