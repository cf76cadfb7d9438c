"""The one guard for hosts named on a user's behalf: every spelling of a loopback, private or
link-local address is refused, the configured object store is let through, and a name is
resolved once (the addresses returned are the ones to connect to)."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import pytest

from orchestrator.errors import ValidationError
from orchestrator.netguard import (
    check_host,
    endpoint_hosts,
    ip_literal,
    refusal,
    resolve_checked,
)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # decimal
        ("0x7f000001", "127.0.0.1"),  # hex
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal first part
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),  # a.b: b is 24 bits
        ("127.0.1", "127.0.0.1"),  # a.b.c: c is 16 bits
        ("0x7f.1", "127.0.0.1"),
        ("169.254.169.254", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("[fe80::1%eth0]", "fe80::1"),
        ("127.0.0.1.", "127.0.0.1"),  # a trailing dot is the same host
    ],
)
def test_every_spelling_of_an_address_is_read(spelling: str, address: str) -> None:
    assert ip_literal(spelling) == ipaddress.ip_address(address)


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "minio",
        "256.0.0.1",
        "1.2.3.4.5",
        "0xg1",
        "08.0.0.1",
        "0-1.0.0.1",
        "-1",
        "",
        "a..b",
    ],
)
def test_names_and_impossible_addresses_are_not_addresses(name: str) -> None:
    assert ip_literal(name) is None


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("0x7f000001", "loopback"),
        ("2130706433", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared"),
        ("[fd00::1]", "private"),
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("0", "unspecified"),
        ("0x", "unspecified"),
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("240.0.0.1", "reserved"),
        ("[::ffff:127.0.0.1]", "loopback"),  # IPv4-mapped
        ("[::ffff:169.254.169.254]", "link-local"),
        ("[::ffff:10.0.0.1]", "private"),
        ("[::127.0.0.1]", "loopback"),  # IPv4-compatible
        ("[2002:7f00:1::]", "loopback"),  # 6to4
        ("[64:ff9b::a9fe:a9fe]", "link-local"),  # NAT64
        ("localhost", "loopback"),
        ("LOCALHOST.", "loopback"),
        ("api.localhost", "loopback"),
    ],
)
def test_off_limits_hosts_are_refused_naming_the_field(host: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why) as caught:
        check_host(host, "Endpoint")
    assert caught.value.field == "Endpoint"
    assert caught.value.message.startswith("Endpoint: ")


@pytest.mark.parametrize("host", ["8.8.8.8", "example.com", "[2606:4700::1111]", "0x08080808"])
def test_public_hosts_pass(host: str) -> None:
    check_host(host, "Endpoint")


def test_a_mapped_public_address_passes() -> None:
    assert refusal(ipaddress.ip_address("::ffff:8.8.8.8")) is None


def test_the_configured_object_store_is_let_through() -> None:
    allowed = endpoint_hosts(["http://127.0.0.1:9000", None, "https://minio.internal:9000"])
    assert allowed == frozenset({"127.0.0.1", "minio.internal"})
    check_host("127.0.0.1", "f", allowed=allowed)
    check_host("0x7f000001", "f", allowed=allowed)  # the same address, spelled otherwise
    with pytest.raises(ValidationError):
        check_host("127.0.0.2", "f", allowed=allowed)


def resolver(*answers: str) -> Any:
    calls: list[str] = []

    def resolve(host: str, port: int, family: int, kind: int) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [(socket.AF_INET, kind, 6, "", (a, port)) for a in answers]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_a_name_is_resolved_once_and_its_addresses_are_what_to_connect_to() -> None:
    resolve = resolver("93.184.216.34", "93.184.216.34")
    got = resolve_checked("example.com", 443, "ModelDataUrl", resolver=resolve)
    assert got == [ipaddress.ip_address("93.184.216.34")]
    assert resolve.calls == ["example.com"]


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    # One private answer among public ones is enough: a rebinding name would use it.
    resolve = resolver("93.184.216.34", "169.254.169.254")
    with pytest.raises(ValidationError, match=re.escape("resolves to 169.254.169.254, link-local")):
        resolve_checked("evil.example", 80, "ModelDataUrl", resolver=resolve)


def test_literals_are_not_resolved_and_failures_name_the_field() -> None:
    resolve = resolver("8.8.8.8")
    assert resolve_checked("8.8.8.8", 80, "f", resolver=resolve) == [
        ipaddress.ip_address("8.8.8.8")
    ]
    assert resolve.calls == []
    with pytest.raises(ValidationError, match="loopback"):
        resolve_checked("0x7f000001", 80, "f", resolver=resolve)

    def broken(*_args: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror("Name or service not known")

    with pytest.raises(
        ValidationError, match=re.escape("f: cannot resolve 'nowhere.invalid'")
    ) as caught:
        resolve_checked("nowhere.invalid", 80, "f", resolver=broken)
    assert caught.value.field == "f"


def test_the_object_store_may_resolve_to_a_private_address() -> None:
    got = resolve_checked(
        "minio", 9000, "f", allowed=frozenset({"minio"}), resolver=resolver("10.0.0.5")
    )
    assert got == [ipaddress.ip_address("10.0.0.5")]
