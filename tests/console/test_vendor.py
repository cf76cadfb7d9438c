"""The vendored browser libraries are the files VENDOR.json names (``.ci/console-vendor.sh``
re-fetches them with npm and checks the same digests)."""

from __future__ import annotations

import hashlib
import json

from orchestrator.console import STATIC_DIR

VENDOR = STATIC_DIR / "vendor"


def test_vendored_files_match_their_digests() -> None:
    manifest = json.loads((VENDOR / "VENDOR.json").read_text())
    assert manifest, "VENDOR.json names no library"
    for name, entry in manifest.items():
        assert entry["integrity"].startswith("sha512-")
        assert entry["npm"] == f"{name}@{entry['version']}"
        for fname, digest in entry["files"].items():
            data = (VENDOR / name / fname).read_bytes()
            assert hashlib.sha256(data).hexdigest() == digest, f"{name}/{fname} was changed"


def test_every_vendored_file_is_named() -> None:
    manifest = json.loads((VENDOR / "VENDOR.json").read_text())
    on_disk = {p.relative_to(VENDOR).as_posix() for p in VENDOR.rglob("*") if p.is_file()} - {
        "VENDOR.json"
    }
    named = {f"{n}/{f}" for n, e in manifest.items() for f in e["files"]}
    assert on_disk == named
