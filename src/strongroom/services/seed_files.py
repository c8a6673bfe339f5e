"""Reading a YAML or JSON document into plain values that remember their lines.

Mappings become ``LineMap`` (a dict that knows its own line and each key's), sequences
``LineList`` (a list that knows its own line and each item's); scalars are plain Python values,
found at their key's or item's line. Lines count from 1.

- **YAML** is read by PyYAML's safe loader, with its scalar types (an unquoted
  ``2030-01-01T00:00:00Z`` is a ``datetime``); the composer's marks give the lines.
- **JSON** is read by the json module, so that its values and its syntax errors are JSON's own
  (PyYAML reads JSON as YAML 1.1: ``1e5`` would be text), and its lines come from a walk of the
  same text that decodes each key and scalar with ``JSONDecoder.raw_decode``.

Every failure is a ``DocumentError`` carrying a line: a syntax error, text that is not UTF-8,
a key that is not text, and a key given twice in one mapping (PyYAML and json both keep the last
silently; in a hand-written file the first is a mistake the reader should hear of).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DocumentError", "LineList", "LineMap", "read_document"]


class DocumentError(Exception):
    """What is wrong with a document, and the line (from 1; 0 for the file as a whole)."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


class LineMap(dict[str, Any]):
    """A mapping of the document, with the line it starts on and the line of each key."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        """The line of ``key`` (the mapping's own line when the key is absent)."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence of the document, with the line it starts on and the line of each item."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index]


def read_document(path: Path) -> Any:
    """The document in ``path``: JSON if its name ends in ``.json``, YAML otherwise. An empty
    YAML document reads as None."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(0, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            raw.count(b"\n", 0, exc.start) + 1, "the file is not UTF-8 text"
        ) from exc
    if path.suffix.lower() == ".json":
        return _read_json(text)
    return _read_yaml(text)


# -- YAML -------------------------------------------------------------------------------------

_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """The safe loader, building ``LineMap`` and ``LineList`` for mappings and sequences."""


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap(_line(node))
    yield data  # filled in after, as SafeConstructor does, so that aliases may refer to it
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE:
            if key_node.value in seen:
                raise DocumentError(
                    _line(key_node), f"'{key_node.value[:60]}' is given twice in this mapping."
                )
            seen.add(key_node.value)
    loader.flatten_mapping(node)  # "<<" merge keys: merged pairs first, the mapping's own after
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise DocumentError(_line(key_node), f"field names are text; got {key!r:.40}.")
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = _line(key_node)


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList(_line(node))
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=True))
        data.item_lines.append(_line(item))


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def _read_yaml(text: str) -> Any:
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = int(mark.line) + 1 if mark is not None else 1
        what = "; ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise DocumentError(line, f"YAML syntax error: {what or exc}.") from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise DocumentError(line, f"YAML cannot hold character {exc.character!r}.") from exc
    except yaml.YAMLError as exc:
        raise DocumentError(1, f"YAML error: {exc}.") from exc
    finally:
        loader.dispose()


# -- JSON -------------------------------------------------------------------------------------

_WHITESPACE = " \t\n\r"  # JSON's, RFC 8259 section 2


def _read_json(text: str) -> Any:
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(exc.lineno, f"JSON syntax error: {exc.msg}.") from exc
    except RecursionError as exc:
        raise DocumentError(1, "JSON nested too deeply.") from exc
    try:
        value, _ = _JsonWalk(text).value(0)
    except RecursionError as exc:
        raise DocumentError(1, "JSON nested too deeply.") from exc
    return value


class _JsonWalk:
    """Walks JSON text that ``json.loads`` has accepted, building the same values with the
    line of every key and item. Scalars and keys are decoded by the json module itself."""

    def __init__(self, text: str):
        self._text = text
        self._decoder = json.JSONDecoder()
        self._newlines = [i for i, c in enumerate(text) if c == "\n"]

    def _line(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _skip(self, pos: int) -> int:
        text = self._text
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        return pos

    def value(self, pos: int) -> tuple[Any, int]:
        pos = self._skip(pos)
        opening = self._text[pos]
        if opening == "{":
            return self._object(pos)
        if opening == "[":
            return self._array(pos)
        value, end = self._decoder.raw_decode(self._text, pos)
        return value, end

    def _object(self, pos: int) -> tuple[LineMap, int]:
        data = LineMap(self._line(pos))
        pos = self._skip(pos + 1)
        if self._text[pos] == "}":
            return data, pos + 1
        while True:
            pos = self._skip(pos)
            key_line = self._line(pos)
            key, pos = self._decoder.raw_decode(self._text, pos)
            if key in data:
                raise DocumentError(key_line, f"'{key[:60]}' is given twice in this object.")
            pos = self._skip(pos) + 1  # the colon
            data[key], pos = self.value(pos)
            data.key_lines[key] = key_line
            pos = self._skip(pos)
            if self._text[pos] == "}":
                return data, pos + 1
            pos += 1  # the comma

    def _array(self, pos: int) -> tuple[LineList, int]:
        data = LineList(self._line(pos))
        pos = self._skip(pos + 1)
        if self._text[pos] == "]":
            return data, pos + 1
        while True:
            pos = self._skip(pos)
            data.item_lines.append(self._line(pos))
            item, pos = self.value(pos)
            data.append(item)
            pos = self._skip(pos)
            if self._text[pos] == "]":
                return data, pos + 1
            pos += 1
