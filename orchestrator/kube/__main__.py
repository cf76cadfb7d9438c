"""``python -m orchestrator.kube write-crds DIR...``: write the generated CRDs as YAML.

One file per CRD, named ``<group>_<plural>.yaml`` as controller-gen names them, with sorted
keys so that the output is stable; this is what ``manifests/crds/`` and the Helm chart's
``crds/`` hold, and a test fails when they differ from what the models generate.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from orchestrator.kube.crds import generate_crds

HEADER = (
    "# Generated from the resource models by `python -m orchestrator.kube write-crds`.\n"
    "# Do not edit: change orchestrator/resources and regenerate.\n"
)

USAGE = "usage: python -m orchestrator.kube write-crds DIR [DIR...]"


def crd_filename(crd: dict[str, Any]) -> str:
    group: str = crd["spec"]["group"]
    plural: str = crd["spec"]["names"]["plural"]
    return f"{group}_{plural}.yaml"


class _Dumper(yaml.SafeDumper):
    """Writes repeated values in full: anchors and aliases are legal YAML but unreadable."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render(crd: dict[str, Any]) -> str:
    body = yaml.dump(crd, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100)
    return HEADER + "---\n" + body


def rendered_crds() -> dict[str, str]:
    """File name -> YAML text, for every CRD."""
    return {crd_filename(crd): render(crd) for crd in generate_crds()}


def write_crds(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``, removing generated files of kinds that are gone."""
    directory.mkdir(parents=True, exist_ok=True)
    files = rendered_crds()
    for stale in directory.glob("*_*.yaml"):
        if stale.name not in files and stale.read_text().startswith(HEADER):
            stale.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "write-crds":
        print(USAGE, file=sys.stderr)
        return 2
    for directory in argv[1:]:
        for path in write_crds(Path(directory)):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
