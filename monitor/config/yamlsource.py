"""YAML loading that remembers where every key came from, so errors can name the line."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """A value found wanting before validation, named by its key path (its line looked up later)."""

    path: Path
    message: str


# Aliases can make a small document expand enormously ("billion laughs"); every later pass over
# the data would pay for that expansion, so the walk stops here.
MAX_EXPANDED_NODES = 200_000


class YamlProblem(Exception):
    def __init__(self, line: int | None, message: str, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                raise YamlProblem(key_node.start_mark.line + 1, "a mapping key must be a scalar")
            if key in seen:
                raise YamlProblem(
                    key_node.start_mark.line + 1,
                    f"duplicate key {key!r} (first defined on line {seen[key]})",
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class _LineRecorder:
    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self._visited = 0
        self._ancestors: set[int] = set()

    def walk(self, node: yaml.Node, path: Path) -> None:
        self._visited += 1
        if self._visited > MAX_EXPANDED_NODES:
            raise YamlProblem(None, "invalid YAML: the document is too large once aliases expand")
        if id(node) in self._ancestors:
            raise YamlProblem(node.start_mark.line + 1, "invalid YAML: an alias refers to itself")
        self.lines.setdefault(path, node.start_mark.line + 1)
        self._ancestors.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                child = (*path, str(key_node.value))
                self.lines.setdefault(child, key_node.start_mark.line + 1)
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))
        self._ancestors.discard(id(node))


def load_yaml(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse one YAML document; return the data and a map from key path to line number."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            recorder = _LineRecorder()
            recorder.walk(node, ())
            return loader.construct_document(node), recorder.lines
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        # PyYAML's own positions, both of them: where the construct began ("while scanning a
        # quoted scalar", line 9, column 14) and where it went wrong (line 10, column 1). The
        # headline is the first, as PyYAML prints it; a 1-based column, as PyYAML counts.
        parts = [
            f"{text} (line {mark.line + 1}, column {mark.column + 1})" if mark else str(text)
            for text, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark))
            if text
        ]
        mark = exc.context_mark or exc.problem_mark
        raise YamlProblem(
            mark.line + 1 if mark else None,
            f"invalid YAML: {', '.join(parts)}",
            mark.column + 1 if mark else None,
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, f"invalid YAML: {exc}") from None
    except RecursionError:
        raise YamlProblem(None, "invalid YAML: nested too deeply") from None


def line_for(path: Path, lines: dict[Path, int]) -> int | None:
    """The line of the longest prefix of `path` that the document defines."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None
