"""Export a built-in algorithm's SavedModel to TFLite, checked against the SavedModel.

``python -m orchestrator.algorithms.export --model-dir D --out model.tflite [--check DATA]``
converts the serving signature, then scores the check data (by default the test features the
training job saved, ``test_features.npy``; or a CSV/Parquet file or directory, with or without
its label column) with both and fails (exit 1) unless every TFLite score is within 1e-5 of the
SavedModel's: ``|tflite - saved| <= 1e-5 * max(1, |saved|)``, i.e. absolute for probabilities
and relative for regression outputs above 1, where float32 itself cannot do better.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.algorithms import data as data_lib
from orchestrator.errors import ValidationError

TOLERANCE = 1e-5


class ExportCheckError(ValidationError):
    """The exported model's predictions differ from the SavedModel's."""


@dataclass(frozen=True)
class ExportReport:
    path: Path
    rows_checked: int
    max_abs_diff: float
    max_scaled_diff: float  # max |a - b| / max(1, |b|), the checked quantity
    size_bytes: int


def check_features(model_dir: Path, check: Path | np.ndarray | None) -> np.ndarray:
    """The feature matrix to compare on: an array, the saved test features, or data files."""
    from orchestrator.algorithms.train import METADATA_FILE, TEST_FEATURES_FILE

    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    n = int(metadata["n_features"])
    if isinstance(check, np.ndarray):
        x = check
    elif check is None:
        x = np.load(model_dir / TEST_FEATURES_FILE)
    else:
        files = data_lib.channel_files(check) if check.is_dir() else [check]
        tables = [data_lib.read_table(f) for f in files]
        parts = []
        for t in tables:
            if t.values.shape[1] == n + 1:
                parts.append(data_lib.split_label(t, str(metadata["label"])).x)
            else:
                parts.append(t.values)
        x = np.concatenate(parts)
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] != n or x.shape[0] == 0:
        raise ValidationError(
            f"the check data must have rows of {n} features (or {n + 1} columns with the "
            f"label); got shape {x.shape}",
            field="check",
        )
    return x


def _tflite_scores(blob: bytes, x: np.ndarray) -> np.ndarray:
    from orchestrator.algorithms import model as model_lib

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = Interpreter(model_content=blob)
    runner = interpreter.get_signature_runner(model_lib.SIGNATURE)
    parts = [
        runner(**{model_lib.INPUT_NAME: x[i : i + 1024]})[model_lib.OUTPUT_NAME]
        for i in range(0, len(x), 1024)
    ]
    return np.concatenate(parts)


def convert(model_dir: Path) -> bytes:
    """The TFLite flatbuffer of the model's serving signature (float32, variables frozen)."""
    import tensorflow as tf

    from orchestrator.algorithms import model as model_lib

    loaded, serve = model_lib.load(model_dir)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve], loaded)
    return bytes(converter.convert())


def export_tflite(
    model_dir: Path, out: Path, check_data: Path | np.ndarray | None = None
) -> ExportReport:
    """Write ``out`` and verify it; raise ``ExportCheckError`` (nothing written) on a mismatch."""
    from orchestrator.algorithms import model as model_lib

    x = check_features(model_dir, check_data)
    blob = convert(model_dir)
    _, serve = model_lib.load(model_dir)
    expected = model_lib.predict(serve, x).astype(np.float64)
    got = _tflite_scores(blob, x).astype(np.float64)
    diff = np.abs(got - expected)
    scaled = diff / np.maximum(1.0, np.abs(expected))
    report = ExportReport(out, len(x), float(diff.max()), float(scaled.max()), len(blob))
    if not np.isfinite(scaled).all() or report.max_scaled_diff > TOLERANCE:
        raise ExportCheckError(
            f"the TFLite model's predictions differ from the SavedModel's by up to "
            f"{report.max_abs_diff:.3g} (scaled {report.max_scaled_diff:.3g} > {TOLERANCE}) "
            f"on {len(x)} rows; nothing was written",
            field="check",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.algorithms.export")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--check", type=Path, default=None, help="CSV/Parquet file or dir")
    parser.add_argument("--format", choices=["tflite"], default="tflite")
    parser.add_argument(
        "--json", action="store_true", help="print the report as one JSON line (for the API)"
    )
    args = parser.parse_args(argv)
    try:
        report = export_tflite(args.model_dir, args.out, args.check)
    except (ValidationError, OSError) as e:
        print(f"export failed: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(report.path),
                    "rows_checked": report.rows_checked,
                    "max_abs_diff": report.max_abs_diff,
                    "max_scaled_diff": report.max_scaled_diff,
                    "size_bytes": report.size_bytes,
                }
            )
        )
        return 0
    print(
        f"wrote {report.path} ({report.size_bytes} bytes); checked {report.rows_checked} rows, "
        f"max_abs_diff={report.max_abs_diff:.3g} max_scaled_diff={report.max_scaled_diff:.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
