"""The configuration reference covers every key the loader accepts."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from monitor.config.model import Config

DOC = (Path(__file__).resolve().parent.parent / "docs" / "CONFIGURATION.md").read_text()


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
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text().splitlines()
    block = readme[readme.index("```sh") + 1 : readme.index("```sh") + 3]
    assert block[0].endswith("recmon demo")
    assert block[1].endswith("pytest")
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert block[1].replace("pip install -q", "pip install -q").split("&& ")[-1] in ci
