"""The safe YAML/JSON loader: every scalar a string, no duplicate keys, no alias bombs, and
errors that give the line and column but quote nothing."""

from __future__ import annotations

from typing import Any, ClassVar

import yaml

from .errors import InputError

MAX_NODES = 100_000  # entries a document may expand to through aliases (a mapping has far fewer)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[str, Any]:
    loader.flatten_mapping(node)
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise _DuplicateOrBadKey(
                key_node, "a key is a list or a mapping", "write each key as a plain name."
            )
        if key in out:
            raise _DuplicateOrBadKey(
                key_node,
                f"the key {key!r} appears twice",
                "give each name once; a later entry does not override an earlier one.",
            )
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _construct_str(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    value = str(loader.construct_scalar(node))
    if value.isascii() or not any("\ud800" <= c <= "\udfff" for c in value):
        return value
    # YAML's \u escapes leave a JSON surrogate pair (how ensure_ascii writes an emoji) as two
    # halves: join them. A half on its own is no text at all, and no AWS call could carry it.
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise _DuplicateOrBadKey(
            node, "a \\u escape is half of a surrogate pair", "escape whole characters only."
        ) from None


def _loader(base: type[Any]) -> type[Any]:
    """Safe YAML in which every scalar is a string (the mapping holds only names) and a
    key given twice is an error instead of a silent overwrite. Explicit tags other than
    strings, lists and mappings (`!!int x`, `!!timestamp ...`, `!!binary`) are refused: their
    constructors fail in many ways, and the mapping needs none of them."""

    class Loader(base):  # type: ignore[misc]
        yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - replaces the inherited table
        yaml_constructors: ClassVar[dict[Any, Any]] = {
            "tag:yaml.org,2002:seq": yaml.SafeLoader.construct_yaml_seq,
            yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG: _construct_mapping,
            yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG: _construct_str,
            None: yaml.SafeLoader.construct_undefined,
        }

    return Loader


# libyaml's parser, which PyYAML's wheels carry, reads a 1,000-entry mapping in a seventh of the
# time of PyYAML's own. Where both read a text they build the same data (a hypothesis property
# holds them to it): the constructors, and so what a document means, are ours in both. libyaml
# refuses a few texts the pure parser reads (the \u surrogate pairs of JSON written with
# ensure_ascii), so what it refuses is read again by the pure parser, whose verdict and message
# stand; it also reads a few the pure parser refuses (a tab inside a plain scalar), as YAML says.
_PURE_LOADER = _loader(yaml.SafeLoader)
_FAST_LOADER = _loader(yaml.CSafeLoader) if yaml.__with_libyaml__ else None


# What yaml.load raises on a text it cannot read: ValueError and friends come from an explicit
# tag such as `!!int x` or `!!timestamp 2024-13-45` whose constructor refused the text.
_UNREADABLE = (yaml.YAMLError, RecursionError, ValueError, TypeError, OverflowError)


class _DuplicateOrBadKey(yaml.YAMLError):
    def __init__(self, node: yaml.Node, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.mark = node.start_mark


def _load(text: str) -> Any:
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
        except _UNREADABLE:
            pass
    return yaml.load(text, Loader=_PURE_LOADER)  # noqa: S506 - a safe loader


def parse_document(text: str, origin: str) -> Any:
    """YAML or JSON text to plain data; errors give the line and column but quote nothing."""
    try:
        data = _load(text)
        _check_size(data, origin)
        return data
    except _DuplicateOrBadKey as exc:
        where = f"line {exc.mark.line + 1}, column {exc.mark.column + 1}"
        raise InputError(origin, f"{where}: {exc.problem}.", exc.fix) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise InputError(
            origin,
            f"{where}not valid YAML or JSON ({exc.problem or exc.context}).",
            "check the indentation and quoting; the README shows each shape.",
        ) from None
    except _UNREADABLE as exc:
        raise InputError(
            origin,
            f"not valid YAML or JSON ({type(exc).__name__}).",
            "check the syntax; the README shows each shape.",
        ) from None


def _check_size(data: Any, origin: str) -> None:
    """Refuse documents that aliases blow up (a "billion laughs") or make refer to themselves:
    validating them would take exponential time or never end."""
    sizes: dict[int, int | None] = {}  # id -> expanded size; None while being counted
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, counted = stack.pop()
        if not isinstance(node, dict | list):
            continue
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if counted:
            size = 1 + sum(sizes.get(id(c)) or 1 for c in children)
            if size > MAX_NODES:
                raise InputError(
                    origin,
                    f"the document expands to more than {MAX_NODES} entries through aliases.",
                    "write the mapping out without nested aliases.",
                )
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            if sizes[id(node)] is None:
                raise InputError(
                    origin,
                    "an alias refers to a node that contains it.",
                    "remove the recursive alias.",
                )
            continue
        sizes[id(node)] = None
        stack.append((node, True))
        stack.extend((c, False) for c in children)
