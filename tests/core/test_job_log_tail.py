"""``GET /training-jobs/NAME/logs?tail=N``: a long log read from its end (the console's live
log opens there), from the first whole line, with the offset to follow from."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.testing import local_control_plane, training_job_spec


def test_tail_reads_the_end_from_a_whole_line_and_follows(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as cp:
        c = cp.client
        c.create_training_job(training_job_spec("long"))
        cp.plane.controller.run_pass()
        lines = [f"step={i} loss={1 / (i + 1):.6f}\n" for i in range(20_000)]
        text = "".join(lines)
        cp.plane.backend.write_log("long", text)
        chunk = c.training_job_logs("long", tail=1000)
        assert chunk.next_offset == len(text.encode())
        assert 0 < len(chunk.text) <= 1000
        assert chunk.text.startswith("step=") and text.endswith(chunk.text)
        assert chunk.text.splitlines()[-1] == "step=19999 loss=0.000050"
        # Following from there: only what comes after.
        cp.plane.backend.write_log("long", "done\n")
        after = c.training_job_logs("long", chunk.next_offset)
        assert after.text == "done\n"
        # A log shorter than the tail: all of it.
        whole = c.training_job_logs("long", tail=4 << 20)
        assert whole.text == text + "done\n"
        with pytest.raises(ValidationError, match="tail: give tail or attempt"):
            c.training_job_logs("long", attempt=1, tail=100)
