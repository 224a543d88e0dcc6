"""A route's `rollout.state` block, written into the ruamel round-trip tree.

The rollout controller records where a rollout stands (step, start, status, verdict, the
counters it judged from) in the route's own `rollout:` block; comment lines after the block
stay after it.
"""

from __future__ import annotations

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import StreamMark
from ruamel.yaml.tokens import CommentToken

from gateway.config.model import CounterSnapshot, RolloutState
from gateway.config.rollout_state import written


def write_state(rollout: CommentedMap, state: RolloutState) -> None:
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
