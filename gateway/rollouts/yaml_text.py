"""Edit YAML text through ruamel.yaml while keeping every line the edit does not touch.

The round trip loads the text, the caller edits the tree, and `transplant` carries over to the
original text only the lines where ruamel's rendering of the edited tree differs from its
rendering of the untouched one: comments, quoting and layout elsewhere stay byte for byte even
where ruamel would render them differently. The store (`gateway.config.store`)
puts the result in place.
"""

from __future__ import annotations

import difflib
import io
import re

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.tokens import CommentToken

from gateway.errors import CommandError

_OPENER = re.compile(r"(?P<dash>(?:- +)*)[^\s#].*?:[ \t]*(?:#.*)?")


class Refused(CommandError):
    """A reason to refuse an edit; the caller adds the file and route."""


def round_trip_yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the long line an edit touches
    mapping, sequence, offset = _indentation(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _indentation(text: str) -> tuple[int, int, int]:
    """The file's (mapping, sequence, offset) indents, from the first nested blocks."""
    mapping: int | None = None
    sequence: int | None = None
    offset = 2
    opener: int | None = None  # content column of the last `key:` line opening a block
    for line in text.splitlines():
        content = line.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        column = len(line) - len(content)
        if opener is not None and content.startswith("- ") and sequence is None:
            offset = column - opener
            sequence = len(line) - len(content[1:].lstrip(" ")) - opener
        elif opener is not None and column > opener and mapping is None:
            mapping = column - opener
        match = _OPENER.fullmatch(content)
        opener = column + len(match["dash"]) if match else None
    return mapping or 2, sequence or 4, offset


def dump(yaml: YAML, document: object) -> str:
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def prefers_flow(document: CommentedMap) -> bool:
    """A new split follows the file's first one; flow style (one line) when there is none."""
    for spec in document["routes"]:
        if isinstance(spec.get("split"), CommentedMap):
            return spec["split"].fa.flow_style() is not False
    return True


def write_split(node: CommentedMap, values: list[tuple[str, float]], *, flow: bool) -> None:
    """Set the route NODE's split to VALUES (name, percent), adding targets it lacks."""
    split = node.get("split")
    if not isinstance(split, CommentedMap):
        if values != [(node["target"], 100)]:
            _expand_shorthand(node, values, flow=flow)
        return
    for name, value in values:
        if name not in split:
            last = list(split)[-1]
            split[name] = value
            if split.fa.flow_style() is False:
                _move_comment_lines(split, last, name)
        elif split[name] != value:
            split[name] = value


def _expand_shorthand(node: CommentedMap, values: list[tuple[str, float]], *, flow: bool) -> None:
    """`target: X` becomes a `split:` mapping in its place, keeping the comments after it."""
    split = CommentedMap(values)
    if flow:
        split.fa.set_flow_style()
    else:
        split.fa.set_block_style()
    node.insert(list(node).index("target"), "split", split)
    comment = node.ca.items.pop("target", None)
    del node["target"]
    if comment is None:
        return
    if flow:
        node.ca.items["split"] = comment
    else:
        split.ca.items[values[0][0]] = comment
        _move_comment_lines(split, values[0][0], values[-1][0])


def _move_comment_lines(mapping: CommentedMap, source: str, dest: str) -> None:
    """Keep `source`'s end-of-line comment on its line; the lines after it now follow `dest`."""
    entry = mapping.ca.items.get(source)
    token = entry[2] if entry else None
    if not isinstance(token, CommentToken):
        return
    head, _, tail = token.value.partition("\n")
    if not token.value.startswith("#"):
        del mapping.ca.items[source]
        moved = token.value
    elif tail:
        token.value = head + "\n"
        moved = "\n" + tail
    else:
        return
    mapping.ca.items[dest] = [None, None, CommentToken(moved, token.start_mark), None]


def transplant(original: str, untouched: str, edited: str) -> str:
    """The original text with the lines ruamel changed for the edit, and only those."""
    lines = original.split("\n")
    before, after = untouched.split("\n"), edited.split("\n")
    where = _line_map(lines, before)
    hunks = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
    for tag, start, stop, first, last in reversed(hunks):
        if tag != "equal":
            begin, end = _span(where, start, stop)
            lines[begin:end] = [
                _keep_comment_gap(lines[begin:end], now) for now in after[first:last]
            ]
    return "\n".join(lines)


def _keep_comment_gap(old: list[str], now: str) -> str:
    """Keep an end-of-line comment's column, or its gap when the line grew past it.

    ruamel keeps the column but leaves a single space before the comment once the line outgrows
    it; a `split: {...}  # note` line that gains a digit should keep its two spaces.
    """
    for was in old:
        for at, char in enumerate(was):
            comment = was[at:]
            if char == "#" and was[at - 1 : at].isspace() and now.endswith(comment):
                code = now[: -len(comment)].rstrip()
                gap = at - len(was[:at].rstrip())
                return code.ljust(max(at, len(code) + gap)) + comment
    return now


def _line_map(lines: list[str], rendered: list[str]) -> dict[int, int]:
    """Rendered line -> original line, where ruamel kept the line or re-rendered it alone."""
    where: dict[int, int] = {}
    matcher = difflib.SequenceMatcher(None, lines, rendered, autojunk=False)
    for tag, start, stop, first, last in matcher.get_opcodes():
        if tag == "equal" or (tag == "replace" and stop - start == last - first):
            where.update(zip(range(first, last), range(start, stop), strict=True))
    return where


def _span(where: dict[int, int], start: int, stop: int) -> tuple[int, int]:
    """Where lines [start, stop) of ruamel's rendering lie in the original text."""
    if start == stop and start - 1 in where:
        return where[start - 1] + 1, where[start - 1] + 1
    first = where.get(start)
    if first is not None and all(where.get(start + i) == first + i for i in range(stop - start)):
        return first, first + stop - start
    raise Refused("refused: the edit cannot be made without reformatting other lines")
