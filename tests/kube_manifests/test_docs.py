"""docs/kubernetes.md stays true: its commands run (helm install as helm template, kubectl
create secret as a client-side dry run), the paths and values it names exist, and its table
of names and columns is the generated CRDs'."""

from __future__ import annotations

import itertools
import os
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from orchestrator.kube.crds import generate_crds
from tests.kube_manifests.conftest import CHART, ROOT, run_tool

DOC = (ROOT / "docs" / "kubernetes.md").read_text()


def shell_commands() -> list[list[str]]:
    """Every command of the doc's bash blocks, continuation lines joined, split as a shell would."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", DOC, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip():
                out.append(shlex.split(line))
    return out


def expand(path: str) -> list[str]:
    """``a.{b,c}.d`` -> ``a.b.d``, ``a.c.d``."""
    parts = re.split(r"\{([^}]*)\}", path)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def lookup(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_path_the_doc_names_exists() -> None:
    paths = set(re.findall(r"(?<![\w/])((?:manifests|helm|orchestrator)/[\w./-]*\w)", DOC))
    assert len(paths) > 10
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []


def test_every_value_the_doc_names_exists_in_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    named = [
        m
        for cell in re.findall(r"^\| `[^|]*` \|", DOC, re.M)
        for m in re.findall(r"`([\w.{},]+)`", cell)
    ]
    named += [
        a.split("=", 1)[0]
        for cmd in shell_commands()
        for a in cmd
        if re.match(r"^[\w.]+=", a) and "." in a.split("=")[0]
    ]
    keys = {k for n in named for k in expand(n)}
    assert len(keys) > 15
    assert [k for k in sorted(keys) if not lookup(values, k)] == []


def test_helm_install_commands_render(helm: str) -> None:
    installs = [c for c in shell_commands() if c[:2] == ["helm", "install"]]
    assert len(installs) == 2
    for cmd in installs:
        proc = run_tool(helm, "template", *cmd[2:])
        assert proc.returncode == 0, proc.stderr


def test_secret_commands_make_the_secrets_the_chart_expects(
    kubectl: str, discovery_kubeconfig: Path, tmp_path: Path
) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (tmp_path / "keyring.json").write_text('{"active": "k1", "keys": {}}')
    env = {**os.environ, "KUBECONFIG": str(discovery_kubeconfig), "HOME": str(tmp_path)}
    made = {}
    for cmd in shell_commands():
        if cmd[:3] != ["kubectl", "create", "secret"]:
            continue
        proc = run_tool(kubectl, *cmd[1:], "--dry-run=client", "-o", "yaml", env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        secret = yaml.safe_load(proc.stdout)
        made[secret["metadata"]["name"]] = set(secret["data"])
    assert made == {
        values["objectStore"]["s3"]["credentialsSecret"]["name"]: {
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        },
        values["masterKey"]["secretName"]: {values["masterKey"]["key"]},
    }


def test_names_table_is_the_generated_crds() -> None:
    rows = re.findall(r"^\| (\w+) \| `(\w+)` \| `(\w+)` \| (.*) \|$", DOC, re.M)
    table = {kind: (plural, short, columns) for kind, plural, short, columns in rows}
    for crd in generate_crds():
        names = crd["spec"]["names"]
        plural, short, columns = table[names["kind"]]
        assert (plural, [short]) == (names["plural"], names["shortNames"])
        default_columns = [
            c["name"]
            for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
            if not c.get("priority")
        ]
        assert re.findall(r"[A-Z]\w+", columns.split("(")[0]) == default_columns, names["kind"]
