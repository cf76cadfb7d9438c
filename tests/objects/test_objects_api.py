import orchestrator.objects as objects


def test_public_api_is_pinned() -> None:
    assert sorted(objects.__all__) == [
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
    for name in objects.__all__:
        assert getattr(objects, name) is not None
