"""``python -m orchestrator.serving --model-dir DIR [...]``: run one inference replica."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.serving.server import serve
from orchestrator.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.serving", description="Serve one model over HTTP."
    )
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--code-dir", type=Path, default=None)
    parser.add_argument("--program", default=None, help="inference script in the code dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--port-file", type=Path, default=None)
    parser.add_argument("--endpoint", default="")
    parser.add_argument("--variant", default="")
    parser.add_argument("--grace-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    try:
        serve(
            args.model_dir,
            code_dir=args.code_dir,
            program=args.program,
            host=args.host,
            port=args.port,
            port_file=args.port_file,
            settings=get_settings().serving,
            endpoint=args.endpoint,
            variant=args.variant,
            grace_seconds=args.grace_seconds,
        )
    except OrchestratorError as e:
        print(f"error: model server failed to start: {e.message}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: model server failed to start: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
