"""Encrypted object storage: ``s3://bucket/key`` objects on a local directory or any S3.

Every object is an authenticated AES-256-GCM envelope with its own data key, wrapped by a
``KeyProvider`` (``LocalKeyring`` by default). Build a store with ``open_object_store``.
"""

from orchestrator.objects.archive import pack_dir, safe_extract
from orchestrator.objects.envelope import (
    DEFAULT_CHUNK_SIZE,
    EnvelopeInfo,
    decrypt_stream,
    encrypt_stream,
)
from orchestrator.objects.keys import KeyProvider, LocalKeyring
from orchestrator.objects.store import FileObjectStore, ObjectInfo, ObjectStore, open_object_store
from orchestrator.objects.uri import join_uri, parse_object_uri, parse_prefix_uri

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "EnvelopeInfo",
    "FileObjectStore",
    "KeyProvider",
    "LocalKeyring",
    "ObjectInfo",
    "ObjectStore",
    "decrypt_stream",
    "encrypt_stream",
    "join_uri",
    "open_object_store",
    "pack_dir",
    "parse_object_uri",
    "parse_prefix_uri",
    "safe_extract",
]
