"""The import-linter layers contract names every package of the product (a new package must
take its place in the layers, not slip in beside them)."""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import orchestrator

ROOT = Path(__file__).resolve().parents[1]


def layered() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    raw = config["importlinter:contract:layers"]["layers"]
    names: set[str] = set()
    for line in raw.strip().splitlines():
        for part in line.replace(":", "|").split("|"):
            names.add(part.strip())
    return names


def test_every_top_level_package_and_module_is_in_a_layer() -> None:
    declared = {name.split(".")[0] for name in layered()}
    present = {m.name for m in pkgutil.iter_modules(orchestrator.__path__)}
    assert present - declared == set(), "add these to the layers in .importlinter"
    assert declared - present == set(), "the layers name packages that do not exist"


def test_every_controller_module_is_in_a_layer() -> None:
    import orchestrator.controller as controller

    declared = {n.split(".", 1)[1] for n in layered() if n.startswith("controller.")}
    present = {m.name for m in pkgutil.iter_modules(controller.__path__)}
    assert present == declared
