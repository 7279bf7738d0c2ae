"""The configuration reference covers every key the loader accepts."""

from __future__ import annotations

from pydantic import BaseModel

from monitor.config.model import Config
from tests.helpers import ROOT

DOC = (ROOT / "docs" / "CONFIGURATION.md").read_text()


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    found = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}.{key}" if prefix else key
        found.append(path)
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found += keys(candidate, path)
    return found


def test_every_configuration_key_is_documented() -> None:
    missing = [path for path in keys(Config) if path.rsplit(".", 1)[-1] not in DOC]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    block = readme[readme.index("```sh") + 1 : readme.index("```sh") + 3]
    assert block[0].endswith("recmon demo")
    assert block[1].endswith(".venv/bin/python -m tests.run")  # tests/run.py
    ci = (ROOT / ".ci" / "run").read_text()
    assert block[1].replace("pip install -q", "pip install -q").split("&& ")[-1] in ci


ARCHITECTURE = (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def test_architecture_names_every_outcome_and_metric() -> None:
    from prometheus_client import CollectorRegistry

    from monitor.core.results import Outcome
    from monitor.telemetry.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    names = {metric.name for metric in registry.collect()}
    # Counters are collected under their base name; the exposed one ends in _total.
    exposed = {f"{n}_total" if f"{n}_total" in ARCHITECTURE else n for n in names}
    unnamed = sorted(n for n in exposed if f"`{n}`" not in ARCHITECTURE)
    assert unnamed == [], "a metric is a contract: name it in docs/ARCHITECTURE.md"
    outcomes = [o.value for o in Outcome if f"`{o.value}`" not in ARCHITECTURE]
    assert outcomes == [], "an outcome is a contract: name it in docs/ARCHITECTURE.md"


def test_every_package_is_in_the_layers_contract_and_the_readme_layout() -> None:
    import tomllib

    packages = sorted(p.parent.name for p in (ROOT / "monitor").glob("*/__init__.py"))
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = " ".join(config["contracts"][0]["layers"])
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    assert [p for p in packages if f"monitor.{p}" not in layers] == []
    assert [p for p in packages if f"  {p}/" not in layout] == []


def test_the_top_level_holds_only_the_entry_points() -> None:
    modules = sorted(p.name for p in (ROOT / "monitor").glob("*.py"))
    assert modules == ["__init__.py", "__main__.py", "cli.py"]


def test_test_folders_are_named_for_what_they_test() -> None:
    """Test folders are named for the package (or deploy/, integration/) they test."""
    packages = {p.parent.name for p in (ROOT / "monitor").glob("*/__init__.py")}
    folders = {p.parent.name for p in (ROOT / "tests").glob("*/test_*.py")}
    assert folders <= packages | {"deploy", "integration"}
