"""Fixtures for the object store tests: a keyring and a file store with small chunks."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.objects import FileObjectStore, LocalKeyring

# The smallest chunk the format allows: multi-chunk cases stay small and fast.
CHUNK = 64 << 10


@pytest.fixture
def keyring(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring(tmp_path / "keys" / "keyring.json")


@pytest.fixture
def store(tmp_path: Path, keyring: LocalKeyring) -> FileObjectStore:
    return FileObjectStore(tmp_path / "objects", keyring, chunk_size=CHUNK)
