"""The controller's one edit: a route's split and its `rollout.state`, in routes.yaml text.

It is `gateway.rollouts.edit` applied to text rather than a path (the table may live in S3 or SSM),
with the state block written too: the same ruamel round trip, the same transplant of only
the changed lines into the original text (comments and layout elsewhere stay byte for byte),
and the same last guard that the result means the old table with just those changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import StreamMark
from ruamel.yaml.tokens import CommentToken

from gateway.config.model import CounterSnapshot, GatewayConfig, RolloutState, Route
from gateway.config.rollout_state import written
from gateway.errors import CommandError
from gateway.rollouts import edit as edits
from gateway.rollouts import yaml_text

Plan = Callable[[GatewayConfig, Route], edits.Weights]


class RolloutEditError(CommandError):
    """The table could not be read or edited as asked; nothing was written."""


def shift_to(target: str, percent: float) -> Plan:
    """TARGET to PERCENT, the others keeping their proportions (`gateway shift`)."""
    return lambda config, route: edits._shifted(config, route, target, percent)


def all_to(target: str) -> Plan:
    """All of the route to TARGET, the others listed at 0 (`gateway promote` / `rollback`)."""
    return lambda config, route: edits._all_to(config, route, target)


def checked(text: str, source: str) -> GatewayConfig:
    try:
        return edits._checked(text, source, "the route table is not valid as it is")
    except yaml_text.Refused as exc:
        raise RolloutEditError(str(exc)) from exc


def edit_route(text: str, source: str, name: str, plan: Plan, state: RolloutState) -> str:
    """TEXT with route NAME's split set by PLAN and its rollout state set to STATE."""
    try:
        return _edit(text.replace("\r\n", "\n"), source, name, plan, state).replace(
            "\n", "\r\n" if "\r\n" in text else "\n"
        )
    except yaml_text.Refused as exc:
        raise RolloutEditError(f"{source}: route {name!r}: {exc}") from exc


def _edit(text: str, source: str, name: str, plan: Plan, state: RolloutState) -> str:
    config = edits._checked(text, source, "refused: the file is not a valid route table as it is")
    route = edits._find_route(config, name)
    yaml = yaml_text.round_trip_yaml(text)
    document = yaml.load(text)
    node = next(spec for spec in document["routes"] if spec.get("name") == name)
    weights = plan(config, route)
    untouched = yaml_text.dump(yaml, document)
    edits._write_split(node, weights, flow=yaml_text.prefers_flow(document))
    _write_state(node["rollout"], state)
    edited = yaml_text.transplant(text, untouched, yaml_text.dump(yaml, document))
    split = tuple((target, share / edits.SCALE) for target, share in weights)
    changed = edits._checked(edited, source, "refused: the edit would make the file invalid")
    _check_only_rollout_changed(config, changed, name, split, state)
    return edited


def _write_state(rollout: CommentedMap, state: RolloutState) -> None:
    # Comment lines after the rollout block hang on its last value; they stay after the block.
    tail = _take_tail(rollout)
    _set_state(rollout, state)
    if tail is not None:
        _put_tail(rollout, *tail)


def _set_state(rollout: CommentedMap, state: RolloutState) -> None:
    node = rollout.get("state")
    if not isinstance(node, CommentedMap):
        node = CommentedMap()
        if rollout.fa.flow_style():
            node.fa.set_flow_style()
        else:
            node.fa.set_block_style()
        rollout["state"] = node
    # 1-based steps and ISO times, for people (gateway/config/rollout_state.py)
    values = {**written(state.step, state.started_at), "status": state.status}
    values["verdict"] = state.verdict
    if "started_at" not in values and "started_at" in node:
        del node["started_at"]
    for key, value in values.items():
        if node.get(key) != value or key not in node:
            node[key] = value
    if state.snapshot:
        node["snapshot"] = _snapshot_node(state.snapshot)
    elif "snapshot" in node:
        del node["snapshot"]


def _last_leaf(mapping: CommentedMap) -> tuple[CommentedMap, object]:
    """The mapping and key of the last value printed in MAPPING's block (nested blocks too)."""
    key = list(mapping)[-1]
    value = mapping[key]
    if isinstance(value, CommentedMap) and value and value.fa.flow_style() is False:
        return _last_leaf(value)
    return mapping, key


def _take_tail(mapping: CommentedMap) -> tuple[str, StreamMark] | None:
    """Detach the comment lines after MAPPING's block (keeping an end-of-line comment)."""
    owner, key = _last_leaf(mapping)
    entry = owner.ca.items.get(key)
    token = entry[2] if entry else None
    if not isinstance(token, CommentToken):
        return None
    head, _, tail = token.value.partition("\n")
    if not tail:
        return None
    if head.startswith("#"):
        token.value = head + "\n"
    else:
        entry[2] = None
    return tail, token.start_mark


def _put_tail(mapping: CommentedMap, tail: str, mark: StreamMark) -> None:
    owner, key = _last_leaf(mapping)
    entry = owner.ca.items.setdefault(key, [None, None, None, None])
    token = entry[2]
    if isinstance(token, CommentToken):
        token.value = token.value.rstrip("\n") + "\n" + tail
    else:
        entry[2] = CommentToken("\n" + tail, mark)


def _snapshot_node(snapshot: tuple[CounterSnapshot, ...]) -> CommentedMap:
    node = CommentedMap()
    node.fa.set_block_style()
    for counts in snapshot:
        buckets = CommentedMap((le, _number(count)) for le, count in counts.buckets)
        buckets.fa.set_flow_style()
        entry = CommentedMap(
            [
                ("requests", _number(counts.requests)),
                ("errors", _number(counts.errors)),
                ("buckets", buckets),
            ]
        )
        entry.fa.set_flow_style()
        node[counts.target] = entry
    return node


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _check_only_rollout_changed(
    old: GatewayConfig,
    new: GatewayConfig,
    name: str,
    split: edits.Split,
    state: RolloutState,
) -> None:
    # The same last guard as gateway.rollouts.edit, allowing the rollout state to change too.
    def expected(route: Route) -> Route:
        if route.name == name and route.rollout is not None:
            rollout = dataclasses.replace(route.rollout, state=state)
            route = dataclasses.replace(route, split=split, rollout=rollout)
        return dataclasses.replace(route, line=0)

    wanted = [expected(route) for route in old.routes]
    found = [dataclasses.replace(route, line=0) for route in new.routes]
    if found != wanted or dict(new.targets) != dict(old.targets):
        raise yaml_text.Refused("refused: the edit would change more than the split and its state")
