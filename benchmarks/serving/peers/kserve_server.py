"""KServe's Python ModelServer serving model.joblib (runs in the kserve virtualenv).

The model class follows KServe's own sklearnserver: ``get_predict_input`` turns a v1
``{"instances": ...}`` body or a v2 ``InferRequest`` into an array, ``predict`` runs
synchronously (as sklearnserver's does), ``get_predict_response`` shapes the answer.

    python kserve_server.py --model_dir DIR --http_port N [KServe's own flags]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import joblib
import kserve
from kserve.utils.utils import get_predict_input, get_predict_response


class JoblibModel(kserve.Model):  # type: ignore[misc]
    def __init__(self, name: str, model_dir: Path) -> None:
        super().__init__(name)
        self.model_dir = model_dir
        self.model: Any = None
        self.load()

    def load(self) -> bool:
        self.model = joblib.load(self.model_dir / "model.joblib")
        self.ready = True
        return True

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        result = self.model.predict(get_predict_input(payload))
        return get_predict_response(payload, result, self.name)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", type=Path, required=True)
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([JoblibModel(args.model_name, args.model_dir)])


if __name__ == "__main__":
    main()
