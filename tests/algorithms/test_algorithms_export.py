"""TFLite export: the file's predictions match the SavedModel's, checked by the export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from algorithms_harness import Job

from orchestrator.algorithms import export, inference


@pytest.mark.parametrize("name", ["binary_job", "multiclass_job", "regression_job"])
def test_export_matches_the_saved_model(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    job: Job = request.getfixturevalue(name)
    out = tmp_path / "model.tflite"
    report = export.export_tflite(job.model_dir, out)
    assert out.stat().st_size == report.size_bytes > 0
    assert report.rows_checked == job.evaluation()["rows"]["test"]
    assert report.max_scaled_diff <= 1e-5
    # and independently of the report: score the test rows with both
    x = np.load(job.model_dir / "test_features.npy")
    saved = inference.predict_fn(x, inference.model_fn(str(job.model_dir))).scores
    lite = export._tflite_scores(out.read_bytes(), x)
    assert lite.shape == saved.shape
    np.testing.assert_allclose(lite, saved, rtol=1e-5, atol=1e-5)


def test_export_checks_data_files_with_the_label_column(binary_job: Job, tmp_path: Path) -> None:
    x = np.load(binary_job.model_dir / "test_features.npy")
    rows = np.column_stack([np.zeros(len(x)), x])
    data = tmp_path / "check.csv"
    np.savetxt(data, rows, delimiter=",")
    assert (
        export.main(
            [
                "--model-dir",
                str(binary_job.model_dir),
                "--out",
                str(tmp_path / "m.tflite"),
                "--check",
                str(data),
            ]
        )
        == 0
    )
    assert export.export_tflite(
        binary_job.model_dir, tmp_path / "n.tflite", data
    ).rows_checked == len(x)


def test_a_mismatch_fails_and_writes_nothing(
    binary_job: Job,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = export._tflite_scores

    def tampered(blob: bytes, x: np.ndarray) -> np.ndarray:
        scores = real(blob, x).copy()
        scores[3] += 2e-5
        return scores

    monkeypatch.setattr(export, "_tflite_scores", tampered)
    out = tmp_path / "m.tflite"
    with pytest.raises(
        export.ExportCheckError, match=r"differ .* by up to 2e-05 .* nothing was written"
    ):
        export.export_tflite(binary_job.model_dir, out)
    assert not out.exists()
    assert export.main(["--model-dir", str(binary_job.model_dir), "--out", str(out)]) == 1
    assert "export failed: the TFLite model's predictions differ" in capsys.readouterr().err


def test_check_data_of_the_wrong_width(binary_job: Job, tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text("1,2,3\n")
    with pytest.raises(export.ValidationError, match=r"rows of 30 features .* got shape \(1, 3\)"):
        export.export_tflite(binary_job.model_dir, tmp_path / "m.tflite", data)
