"""``python -m orchestrator.serving --model-dir DIR [...]``: run one inference replica.

A pipeline instead of one model: ``--pipeline FILE``, a JSON list of steps
``{"model_dir": ..., "code_dir": ..., "program": ..., "hostname": ...}`` (only ``model_dir``
is required), run in order.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError, ValidationError
from orchestrator.serving.batching import BatchingConfig
from orchestrator.serving.pipeline import ModelSource
from orchestrator.serving.server import serve
from orchestrator.settings import ServingSettings, get_settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m orchestrator.serving", description="Serve one model over HTTP."
    )
    p.add_argument("--model-dir", type=Path, default=None)
    p.add_argument("--code-dir", type=Path, default=None)
    p.add_argument("--program", default=None, help="inference script in the code dir")
    p.add_argument("--pipeline", type=Path, default=None, help="JSON list of steps to chain")
    p.add_argument("--model-name", default="model", help="the model's name in /v2/models/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port")
    p.add_argument("--port-file", type=Path, default=None)
    p.add_argument("--endpoint", default="")
    p.add_argument("--variant", default="")
    p.add_argument("--grace-seconds", type=float, default=30.0)
    p.add_argument("--max-batch-size", type=int, default=None, help="2..1024: batch requests")
    p.add_argument("--max-batch-delay-ms", type=float, default=0.0)
    p.add_argument("--max-concurrency", type=int, default=None, help="model calls at once")
    p.add_argument("--max-queue", type=int, default=None, help="requests waiting, then 429")
    p.add_argument("--timeout-seconds", type=float, default=None, help="per request")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate: serve HTTPS")
    p.add_argument("--tls-key", type=Path, default=None, help="its unencrypted PEM key")
    return p


def main(argv: list[str] | None = None) -> int:
    # The model's own prints reach the replica's log as they happen (its log stream), as in
    # SageMaker's containers (PYTHONUNBUFFERED), not when a block buffer fills.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    args = parser().parse_args(argv)
    try:
        settings = _settings(get_settings().serving, args)
        batching = _batching(args)
        pipeline = read_pipeline(args.pipeline) if args.pipeline is not None else []
        if args.model_dir is None and not pipeline:
            raise ValidationError("pass --model-dir (or --pipeline FILE)", field="--model-dir")
        if args.model_dir is not None and pipeline:
            raise ValidationError(
                "pass --model-dir or --pipeline, not both (a pipeline names each step's dir)",
                field="--pipeline",
            )
        if (args.tls_cert is None) != (args.tls_key is None):
            raise ValidationError(
                "pass both --tls-cert and --tls-key (or neither, for plain HTTP)",
                field="--tls-cert",
            )
        serve(
            args.model_dir,
            code_dir=args.code_dir,
            program=args.program,
            pipeline=pipeline,
            host=args.host,
            port=args.port,
            port_file=args.port_file,
            settings=settings,
            endpoint=args.endpoint,
            variant=args.variant,
            model_name=args.model_name,
            batching=batching,
            grace_seconds=args.grace_seconds,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
    except OrchestratorError as e:
        print(f"error: model server failed to start: {e.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:
        print(f"error: model server failed to start: {e}", file=sys.stderr)
        return 1
    return 0


def _settings(base: ServingSettings, args: argparse.Namespace) -> ServingSettings:
    updates: dict[str, Any] = {}
    for name, value in (
        ("max_concurrency", args.max_concurrency),
        ("max_queue", args.max_queue),
        ("invocation_timeout_seconds", args.timeout_seconds),
    ):
        if value is not None:
            updates[name] = value
    if not updates:
        return base
    try:
        return ServingSettings.model_validate({**base.model_dump(), **updates})
    except ValueError as e:
        raise ValidationError(f"bad serving option: {e}", field="--max-concurrency") from e


def _batching(args: argparse.Namespace) -> BatchingConfig | None:
    if args.max_batch_size is None:
        return None
    try:
        return BatchingConfig(args.max_batch_size, args.max_batch_delay_ms / 1000.0)
    except ValueError as e:
        raise ValidationError(
            f"--max-batch-size must be 1..1024 and --max-batch-delay-ms 0..1000: {e}",
            field="--max-batch-size",
        ) from e


def read_pipeline(path: Path) -> list[ModelSource]:
    """The steps of a ``--pipeline`` file."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValidationError(f"cannot read {path}: {e}", field="--pipeline") from e
    if not isinstance(document, list) or not document:
        raise ValidationError(f"{path} must hold a non-empty JSON list", field="--pipeline")
    steps = []
    for index, step in enumerate(document):
        if not isinstance(step, dict) or not isinstance(step.get("model_dir"), str):
            raise ValidationError(
                f"step {index} of {path} needs a model_dir string", field="--pipeline"
            )
        code_dir = step.get("code_dir")
        steps.append(
            ModelSource(
                Path(step["model_dir"]),
                Path(code_dir) if code_dir else None,
                step.get("program") or None,
                str(step.get("hostname") or ""),
            )
        )
    return steps


if __name__ == "__main__":
    sys.exit(main())
