"""Submit -> running latency on the process backend, against a bare Python process start.

For each of N jobs: the time from the client's CreateTrainingJob call to the first line the
job's own script runs (it prints ``time.time()``), i.e. API + controller + supervisor start +
channel/source download + the script's interpreter start. Side by side, the same machine
starts a bare ``python -c`` process N times. Goal: p50 <= 0.3 s.

    python benchmarks/submit_latency.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import time

from orchestrator.client import Client

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _server import control_plane, percentile

SCRIPT = b"import time\nprint(f'script_started_at={time.time():.6f}', flush=True)\n"


def tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = len(SCRIPT)
        tar.addfile(info, io.BytesIO(SCRIPT))
    return buf.getvalue()


def bare_starts(n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.time()
        line = subprocess.run(
            [sys.executable, "-c", "import time; print(time.time())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        out.append(float(line) - t0)
    return out


def job_starts(n: int) -> list[float]:
    out = []
    with control_plane() as (url, key, _root), Client(url, key) as client:
        source = "s3://orchestrator/bench/sourcedir.tar.gz"
        client.upload_bytes(tarball(), source)
        for i in range(n):
            name = f"latency-{i}"
            t0 = time.time()
            client.create_training_job(
                {
                    "TrainingJobName": name,
                    "AlgorithmSpecification": {"TrainingInputMode": "File"},
                    "HyperParameters": {
                        "sagemaker_program": "train.py",
                        "sagemaker_submit_directory": source,
                    },
                }
            )
            job = client.wait_for_training_job(name, poll=0.05, timeout=60)
            if job.TrainingJobStatus != "Completed":
                raise SystemExit(f"{name}: {job.TrainingJobStatus}: {job.FailureReason}")
            m = re.search(r"script_started_at=(\S+)", client.training_job_logs(name).text)
            assert m is not None
            out.append(float(m.group(1)) - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    bare = bare_starts(args.jobs)
    jobs = job_starts(args.jobs)
    print(f"submit -> script running, {args.jobs} jobs each (seconds)")
    print(f"{'what':<40} {'p50':>7} {'p99':>7} {'max':>7}")
    for label, xs in (
        ("bare python process start", bare),
        ("process backend: submit -> running", jobs),
    ):
        print(f"{label:<40} {percentile(xs, 0.5):7.3f} {percentile(xs, 0.99):7.3f} {max(xs):7.3f}")
    print(
        f"ratio (job p50 / bare p50): {percentile(jobs, 0.5) / percentile(bare, 0.5):.2f}x; "
        f"goal p50 <= 0.300 s: {'met' if percentile(jobs, 0.5) <= 0.3 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
