"""A route rewritten into the shape of a stage, comments and layout kept (the edit engine's
round-trip YAML and line transplant), and checked before anything is written."""

from __future__ import annotations

from dataclasses import dataclass

from ruamel.yaml.comments import CommentedMap

from gateway.config.load import load_text
from gateway.config.model import ConfigError, GatewayConfig, Stage
from gateway.rollouts.yaml_text import Refused, dump, prefers_flow, round_trip_yaml, transplant
from gateway.rollouts.yaml_text import write_split as _write_split

DEFAULT_CANARY = 5.0


@dataclass(frozen=True, slots=True)
class Shape:
    """Route NAME in stage TO, between its LEGACY and CANDIDATE targets."""

    name: str
    to: Stage
    legacy: str
    candidate: str
    canary: float = DEFAULT_CANARY  # the candidate's share when the move is into canary


def reshaped(text: str, source: str, shape: Shape) -> tuple[str, GatewayConfig]:
    """TEXT with the route in the shape of its stage, and the table it makes; or Refused."""
    name, to, legacy, candidate = shape.name, shape.to, shape.legacy, shape.candidate
    canary = shape.canary
    yaml = round_trip_yaml(text)
    document = yaml.load(text)
    node = next(spec for spec in document["routes"] if spec.get("name") == name)
    untouched = dump(yaml, document)
    flow = prefers_flow(document)
    match to:
        case "legacy" | "shadow":
            _split(node, [(legacy, 100.0), (candidate, 0.0)], flow)
        case "canary":
            _split(node, [(legacy, 100.0 - canary), (candidate, canary)], flow)
        case "new":
            _split(node, [(legacy, 0.0), (candidate, 100.0)], flow)
            if "fallback" not in node:
                _put_after(node, "split", "fallback", legacy)
        case "retired":
            _split(node, [(candidate, 100.0)], flow)
            _retire(node, legacy)
    _shadow(node, candidate if to == "shadow" else None)
    _stage(node, to)
    edited = transplant(text, untouched, dump(yaml, document))
    try:
        return edited, load_text(edited, source)
    except ConfigError as exc:
        raise Refused(f"refused: the route in stage {to} would be invalid\n{exc}") from exc


def _split(node: CommentedMap, values: list[tuple[str, float]], flow: bool) -> None:
    _write_split(node, [(target, _number(share)) for target, share in values], flow=flow)
    split = node.get("split")
    if isinstance(split, CommentedMap):
        for target in [t for t in split if t not in dict(values)]:
            del split[target]


def _retire(node: CommentedMap, legacy: str) -> None:
    for key in ("fallback", "baseline"):
        if node.get(key) == legacy:
            del node[key]
    if "fallback_on" in node and "fallback" not in node:
        del node["fallback_on"]


def _shadow(node: CommentedMap, candidate: str | None) -> None:
    current = node.get("shadow")
    if candidate is None:
        if "shadow" in node:
            del node["shadow"]
        return
    if isinstance(current, CommentedMap):
        current["target"] = candidate
        return
    block = CommentedMap([("target", candidate)])
    block.fa.set_flow_style()
    _put_after(node, "split", "shadow", block)


def _stage(node: CommentedMap, to: Stage) -> None:
    if "stage" in node:
        node["stage"] = to
    else:
        node.insert(list(node).index("name") + 1, "stage", to)


def _put_after(node: CommentedMap, after: str, key: str, value: object) -> None:
    keys = list(node)
    at = keys.index(after) + 1 if after in keys else len(keys)
    node.insert(at, key, value)


def _number(share: float) -> float | int:
    return int(share) if float(share).is_integer() else share
