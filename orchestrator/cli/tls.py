"""``orch tls``: certificates for ``orch server --tls-cert/--tls-key`` (docs/security.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator import tls
from orchestrator.cli.common import console
from orchestrator.settings import get_settings

app = typer.Typer(help="TLS certificates for the control plane.", no_args_is_help=True)


def default_dir() -> Path:
    return get_settings().config_dir / "tls"


@app.command("self-signed")
def self_signed(
    host: Annotated[str, typer.Argument(help="The name or address clients connect to.")],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write it (default: <config dir>/tls).")
    ] = None,
    days: Annotated[int, typer.Option(help="Validity in days.")] = tls.DEFAULT_DAYS,
    renew: Annotated[
        bool, typer.Option(help="Make a new one even if a valid one for HOST exists.")
    ] = False,
) -> None:
    """Make a self-signed certificate and key (0600) for HOST; print the paths and the
    SHA-256 fingerprint clients can check."""
    made = tls.self_signed(host, directory or default_dir(), days=days, renew=renew)
    say_certificate(made)


@app.command()
def fingerprint(
    cert: Annotated[Path, typer.Argument(help="A PEM certificate.")],
) -> None:
    """Print a certificate's SHA-256 fingerprint."""
    say(tls.fingerprint(cert))


def say(text: str) -> None:
    # Plain text: no markup, no wrapping of long paths, and no emoji (a fingerprint's ":CD:"
    # is one to rich).
    console.print(text, markup=False, emoji=False, highlight=False, soft_wrap=True)


def say_certificate(made: tls.CertificateFiles) -> None:
    verb = "wrote" if made.created else "reusing"
    say(f"{verb} certificate {made.cert}")
    say(f"{verb} key {made.key} (mode 0600)")
    say(f"SHA-256 fingerprint {made.fingerprint}")
    say(f"clients trust it with --ca-bundle {made.cert} (or ORCH_CA_BUNDLE)")
