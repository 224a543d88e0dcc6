"""Editing routes.yaml by command: shift, promote, rollback, and diffing two route tables."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import stat
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest
from ruamel.yaml.comments import CommentedMap

from gateway.cli.diff import diff
from gateway.config.load import load_config, parse_config
from gateway.rollouts.edit import (
    Change,
    EditError,
    EditResult,
    add_edit_verbs,
    apply,
    promote,
    rollback,
    shift,
)

ROOT = Path(__file__).resolve().parents[2]
ROUTES_TEXT = (ROOT / "routes.yaml").read_text(encoding="utf-8")
FLOW_SPLIT = "    split: {legacy: 90, orders-v2: 10}\n"
BLOCK_TEXT = ROUTES_TEXT.replace(
    FLOW_SPLIT, "    split:\n      legacy: 90  # the monolith\n      orders-v2: 10\n"
)
THREE_TEXT = """\
# Three generations of the orders service.
targets:
  legacy:
    url: http://127.0.0.1:8001
  orders-v2:
    url: http://127.0.0.1:8002
  orders-v3:
    url: http://127.0.0.1:8003

routes:
  # The canary widens one step at a time.
  - name: orders
    path: /api/orders
    split: {legacy: 60, orders-v2: 30, orders-v3: 10}  # keep in step with the dashboard
    sticky: header:x-user-id
"""
BLOCK_THREE_TEXT = """\
targets:
  legacy: {url: http://127.0.0.1:8001}
  orders-v2: {url: http://127.0.0.1:8002}
  orders-v3: {url: http://127.0.0.1:8003}
routes:
  - name: orders
    path: /api/orders
    split:
      legacy: 90
      orders-v2: 10  # canary
  # Everything else stays on the monolith.
  - name: everything-else
    path: /
    target: legacy
"""
LONG_AGO_NS = 1_000_000_000_000_000_000  # an mtime no write during the test can produce


def line_of(text: str, line: str) -> int:
    """The 1-based number of `line` in `text` (the repo's routes.yaml changes over time)."""
    return text.splitlines().index(line.rstrip("\n")) + 1


def write(tmp_path: Path, text: str, name: str = "routes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(LONG_AGO_NS, LONG_AGO_NS))
    return path


def gateway(*argv: str) -> int:
    """Run an edit verb the way `gateway` will, through a parser built by add_edit_verbs."""
    top = argparse.ArgumentParser(prog="gateway")
    add_edit_verbs(top.add_subparsers(dest="verb", required=True))
    args = top.parse_args(argv)
    code: int = args.run(args)
    return code


def changed_lines(before: str, after: str) -> dict[int, tuple[str, str]]:
    """Line number -> (old, new) for every line that differs; the line count must not change."""
    old, new = before.splitlines(), after.splitlines()
    assert len(old) == len(new)
    return {n: (a, b) for n, (a, b) in enumerate(zip(old, new, strict=True), 1) if a != b}


def hunks(before: str, after: str) -> list[tuple[list[str], list[str]]]:
    """The stretches of lines that differ, old and new."""
    old, new = before.splitlines(), after.splitlines()
    opcodes = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
    return [(old[i1:i2], new[j1:j2]) for tag, i1, i2, j1, j2 in opcodes if tag != "equal"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ROUTES_TEXT,
            {
                line_of(ROUTES_TEXT, FLOW_SPLIT): (
                    FLOW_SPLIT[:-1],
                    "    split: {legacy: 75, orders-v2: 25}",
                )
            },
        ),
        (
            BLOCK_TEXT,
            {
                line_of(BLOCK_TEXT, "    split:") + 1: (
                    "      legacy: 90  # the monolith",
                    "      legacy: 75  # the monolith",
                ),
                line_of(BLOCK_TEXT, "    split:") + 2: (
                    "      orders-v2: 10",
                    "      orders-v2: 25",
                ),
            },
        ),
    ],
    ids=["flow-split", "block-split"],
)
def test_shift_changes_only_the_weight_lines(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    expected: dict[int, tuple[str, str]],
) -> None:
    # GIVEN the commented demo route table, its split in flow or block style
    path = write(tmp_path, text)

    # WHEN a tenth more of the orders traffic is shifted to orders-v2
    code = gateway("shift", str(path), "orders", "orders-v2=25")

    # THEN it says what moved, and only the weight lines differ
    assert code == 0
    assert capsys.readouterr().out == "orders: legacy 90% -> 75%, orders-v2 10% -> 25%\n"
    assert changed_lines(text, path.read_text(encoding="utf-8")) == expected


def test_shift_then_promote_then_rollback(tmp_path: Path) -> None:
    # GIVEN the demo route table
    path = write(tmp_path, ROUTES_TEXT)
    steps: list[Callable[[], EditResult]] = [
        lambda: shift(path, "orders", "orders-v2", 25),
        lambda: promote(path, "orders", "orders-v2"),
        lambda: rollback(path, "orders"),
    ]
    results, texts = [], []

    # WHEN the canary widens to 25%, is promoted, then rolled back
    for edit in steps:
        results.append(edit())
        texts.append(path.read_text(encoding="utf-8"))

    # THEN each step rewrote only the split line, promote kept legacy listed at 0 and the
    # rollback sent everything to the first target of the split
    assert [result.summary for result in results] == [
        "orders: legacy 90% -> 75%, orders-v2 10% -> 25%",
        "orders: legacy 75% -> 0%, orders-v2 25% -> 100%",
        "orders: legacy 0% -> 100%, orders-v2 100% -> 0%",
    ]
    assert results[1].after == (("legacy", 0.0), ("orders-v2", 100.0))
    assert results[2].before == (("legacy", 0.0), ("orders-v2", 100.0))
    line = line_of(ROUTES_TEXT, FLOW_SPLIT)
    assert [changed_lines(ROUTES_TEXT, text) for text in texts] == [
        {line: (FLOW_SPLIT[:-1], f"    split: {{{weights}}}")}
        for weights in (
            "legacy: 75, orders-v2: 25",
            "legacy: 0, orders-v2: 100",
            "legacy: 100, orders-v2: 0",
        )
    ]


def test_two_target_split_with_the_other_at_zero_gives_it_the_rest(tmp_path: Path) -> None:
    # GIVEN orders fully promoted to orders-v2, legacy listed at 0
    path = write(
        tmp_path, ROUTES_TEXT.replace("legacy: 90, orders-v2: 10", "legacy: 0, orders-v2: 100")
    )

    # WHEN orders-v2 is shifted back to 75%
    result = shift(path, "orders", "orders-v2", 75)

    # THEN legacy gets the remaining 25%
    assert result.after == (("legacy", 25.0), ("orders-v2", 75.0))
    assert "    split: {legacy: 25, orders-v2: 75}\n" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ROUTES_TEXT, ["    split: {orders-v2: 90, legacy: 10}"]),
        (BLOCK_TEXT, ["    split:", "      orders-v2: 90", "      legacy: 10"]),
    ],
    ids=["flow-file", "block-file"],
)
def test_shift_on_a_target_shorthand_makes_a_split_in_its_place(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    # GIVEN the opt-in route written as `target: orders-v2`, in a file whose splits are flow
    # or block style
    path = write(tmp_path, text)

    # WHEN a tenth of it is shifted to legacy
    result = shift(path, "orders-canary-optin", "legacy", 10)

    # THEN `target:` became a split of the file's style in the same place; the comment and
    # blank line after it are kept
    assert result.summary == "orders-canary-optin: orders-v2 100% -> 90%, legacy 0% -> 10%"
    assert hunks(text, path.read_text(encoding="utf-8")) == [(["    target: orders-v2"], expected)]


@pytest.mark.parametrize(
    ("assignment", "weights", "line"),
    [
        ("orders-v3=40", (40, 20, 40), "{legacy: 40, orders-v2: 20, orders-v3: 40}"),
        (
            "legacy=33.333",
            (33.333, 50, 16.667),
            "{legacy: 33.333, orders-v2: 50, orders-v3: 16.667}",
        ),
        ("orders-v2=0", (85.714, 0, 14.286), "{legacy: 85.714, orders-v2: 0, orders-v3: 14.286}"),
        (
            "orders-v2=2.5",
            (83.571, 2.5, 13.929),
            "{legacy: 83.571, orders-v2: 2.5, orders-v3: 13.929}",
        ),
    ],
    ids=["whole-numbers", "rounded-to-thousandths", "one-to-zero", "half-percent"],
)
def test_rescaling_three_targets_keeps_proportions_and_sums_to_100(
    tmp_path: Path, assignment: str, weights: tuple[float, ...], line: str
) -> None:
    # GIVEN a 60/30/10 split over three targets
    path = write(tmp_path, THREE_TEXT)

    # WHEN one of them is shifted
    assert gateway("shift", str(path), "orders", assignment) == 0

    # THEN the other two keep their 60:30:10 ratio to within a thousandth, and the written
    # weights (at most three decimals) sum to exactly 100
    text = path.read_text(encoding="utf-8")
    split = parse_config(text, str(path)).routes[0].split
    assert tuple(weight for _, weight in split) == weights
    target, share = assignment.split("=")
    was = {"legacy": 60, "orders-v2": 30, "orders-v3": 10}
    rest, others = 100 - float(share), [name for name in was if name != target]
    for name, weight in split:
        if name != target:
            exact = was[name] * rest / sum(was[other] for other in others)
            assert abs(weight - exact) <= 0.001
    assert sum(Fraction(repr(weight)) for _, weight in split) == 100
    comment = "  # keep in step with the dashboard"
    assert changed_lines(THREE_TEXT, text) == {
        14: (
            "    split: {legacy: 60, orders-v2: 30, orders-v3: 10}" + comment,
            f"    split: {line}{comment}",
        )
    }


PREVIEW_ROUTE = """\
  # The new service under its future URL, reached through a rewrite.
  - name: orders-v2-preview
    path: /v2/orders
    rewrite: /api/orders
    target: orders-v2

"""
INVALID_FILE = ROUTES_TEXT.replace("orders-v2: 10}", "orders-v2: 20}")
BROKEN_YAML = ROUTES_TEXT.replace("orders-v2: 10}", "orders-v2: 10")


@pytest.mark.parametrize(
    ("text", "argv", "expected"),
    [
        (ROUTES_TEXT, ["shift", "ordrs", "orders-v2=25"], (1, "route 'ordrs': no such route (did")),
        (ROUTES_TEXT, ["shift", "orders", "orders-v3=25"], (1, "unknown target 'orders-v3' (did")),
        (ROUTES_TEXT, ["shift", "orders", "orders-v2=101"], (1, "101% is not a percentage 0..100")),
        (ROUTES_TEXT, ["shift", "orders", "orders-v2=-1"], (1, "-1% is not a percentage 0..100")),
        (ROUTES_TEXT, ["shift", "orders", "orders-v2=abc"], (2, "'orders-v2=abc': write TARGET=")),
        (ROUTES_TEXT, ["shift", "orders", "orders-v2=2.5555"], (1, "at most three decimals")),
        (ROUTES_TEXT, ["shift", "orders-v2-preview", "orders-v2=50"], (1, "its only target")),
        (ROUTES_TEXT, ["promote", "orders", "v2"], (1, "unknown target 'v2'")),
        (ROUTES_TEXT, ["rollback", "nope"], (1, "route 'nope': no such route")),
        (INVALID_FILE, ["shift", "orders", "orders-v2=25"], (1, "weights sum to 110, not 100")),
        (BROKEN_YAML, ["promote", "orders", "orders-v2"], (1, "not a valid route table")),
    ],
    ids=[
        "unknown-route",
        "unknown-target",
        "101-percent",
        "minus-1-percent",
        "not-a-number",
        "four-decimals",
        "only-target",
        "promote-unknown-target",
        "rollback-unknown-route",
        "file-already-invalid",
        "yaml-syntax-error",
    ],
)
def test_a_refused_edit_leaves_the_file_untouched(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    argv: list[str],
    expected: tuple[int, str],
) -> None:
    # GIVEN a route table, valid or not
    path = write(tmp_path, text)
    before = (path.read_bytes(), path.stat().st_mtime_ns)

    # WHEN an edit that cannot be made is asked for
    verb, *rest = argv
    exit_code = gateway(verb, str(path), *rest)

    # THEN it exits 1 (2 for a usage error) with the reason on stderr, the file keeps its
    # bytes and mtime, and no temp file is left behind
    code, reason = expected
    out, err = capsys.readouterr()
    assert (exit_code, out) == (code, "")
    assert reason in err
    assert err.startswith(f"{path}: route {rest[0]!r}: " if code == 1 else "gateway shift: ")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir()] == ["routes.yaml"]


def test_a_target_added_to_a_block_split_goes_before_the_comment_after_it(
    tmp_path: Path,
) -> None:
    # GIVEN a block-style split whose last weight carries a comment, then a comment that
    # belongs to the next route
    path = write(tmp_path, BLOCK_THREE_TEXT)

    # WHEN a third target is shifted in at 5%
    result = shift(path, "orders", "orders-v3", 5)

    # THEN it is added as the split's last line; both comments stay where they were
    assert (
        result.summary == "orders: legacy 90% -> 85.5%, orders-v2 10% -> 9.5%, orders-v3 0% -> 5%"
    )
    assert hunks(BLOCK_THREE_TEXT, path.read_text(encoding="utf-8")) == [
        (
            ["      legacy: 90", "      orders-v2: 10  # canary"],
            ["      legacy: 85.5", "      orders-v2: 9.5  # canary", "      orders-v3: 5"],
        )
    ]


def test_a_yaml_syntax_error_is_reported_with_its_line(tmp_path: Path) -> None:
    # GIVEN a file whose flow mapping is never closed
    path = write(tmp_path, BROKEN_YAML)

    # WHEN it is edited directly
    with pytest.raises(EditError) as caught:
        shift(path, "orders", "orders-v2", 25)

    # THEN the error names the file, the route and the parser's complaint
    assert caught.value.path == str(path)
    assert caught.value.route == "orders"
    assert f"{path}:" in caught.value.reason
    assert ": yaml: " in caught.value.reason
    assert path.read_text(encoding="utf-8") == BROKEN_YAML


def test_several_targets_at_zero_are_refused_rather_than_guessed(tmp_path: Path) -> None:
    # GIVEN a route fully on legacy, two newer targets listed at 0
    path = write(
        tmp_path,
        THREE_TEXT.replace("60, orders-v2: 30, orders-v3: 10", "100, orders-v2: 0, orders-v3: 0"),
    )

    # WHEN legacy is shifted down to 50%
    with pytest.raises(EditError) as caught:
        shift(path, "orders", "legacy", 50)

    # THEN the edit is refused: which of the two should get the rest is not for the tool to guess
    assert "orders-v2, orders-v3 all have 0%" in str(caught.value)
    assert path.stat().st_mtime_ns == LONG_AGO_NS


def test_the_write_is_atomic_and_keeps_the_file_mode(tmp_path: Path) -> None:
    # GIVEN a route table readable by its owner and group only
    path = write(tmp_path, ROUTES_TEXT)
    path.chmod(0o640)
    inode = path.stat().st_ino

    # WHEN it is edited
    shift(path, "orders", "orders-v2", 25)

    # THEN a new file was renamed over it, with the same mode, and no temp file is left
    assert path.stat().st_ino != inode
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["routes.yaml"]


def test_an_edit_that_changes_nothing_does_not_write(tmp_path: Path) -> None:
    # GIVEN the catch-all route, all on legacy
    path = write(tmp_path, ROUTES_TEXT)

    # WHEN it is promoted to legacy again
    result = promote(path, "everything-else", "legacy")

    # THEN the result says so and the file is not rewritten
    assert result.summary == "everything-else: no change (legacy 100%)"
    assert path.stat().st_mtime_ns == LONG_AGO_NS


def test_rollback_of_a_converted_shorthand_goes_to_its_first_target(tmp_path: Path) -> None:
    # GIVEN the opt-in route, once `target: orders-v2`, now split 90/10 with legacy
    path = write(tmp_path, ROUTES_TEXT)
    shift(path, "orders-canary-optin", "legacy", 10)

    # WHEN it is rolled back
    result = rollback(path, "orders-canary-optin")

    # THEN everything goes back to orders-v2, legacy stays listed at 0
    assert result.after == (("orders-v2", 100.0), ("legacy", 0.0))
    assert "    split: {orders-v2: 100, legacy: 0}\n" in path.read_text(encoding="utf-8")


def test_rollback_goes_to_the_baseline_when_the_route_names_one(tmp_path: Path) -> None:
    # GIVEN a route whose baseline is not the first target of its split
    text = ROUTES_TEXT.replace(FLOW_SPLIT, FLOW_SPLIT + "    baseline: orders-v2\n")
    path = write(tmp_path, text)

    # WHEN it is rolled back
    result = rollback(path, "orders")

    # THEN all of it goes to the baseline
    assert result.after == (("legacy", 0.0), ("orders-v2", 100.0))


def test_line_endings_and_lines_ruamel_would_reformat_are_kept(tmp_path: Path) -> None:
    # GIVEN a CRLF file with a comment before `---`, odd spacing and `~`, which a plain
    # ruamel round trip would drop or rewrite
    text = "# owned by the platform team\n---\n" + ROUTES_TEXT.replace(
        "timeout: 5s", "timeout:    5s"
    ).replace("    target: legacy\n", "    target: legacy\n    headers: ~\n")
    path = tmp_path / "routes.yaml"
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))

    # WHEN the orders split is shifted
    shift(path, "orders", "orders-v2", 25)

    # THEN only the split line changed, CRLF included
    after = path.read_bytes().decode("utf-8")
    assert after == text.replace(FLOW_SPLIT, "    split: {legacy: 75, orders-v2: 25}\n").replace(
        "\n", "\r\n"
    )


def config_with(split: str, *, path: str = "/api/orders", extra: str = "") -> str:
    return f"""\
targets:
  legacy: {{url: http://legacy:8001}}
  orders-v2: {{url: http://v2:8002}}
  orders-v3: {{lambda: orders-v3}}
routes:
  - name: orders
    path: {path}
    split: {split}
{extra}"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            config_with("{legacy: 90, orders-v2: 10}"),
            config_with("{legacy: 75, orders-v2: 25}"),
            ["orders: 15% moves legacy -> orders-v2 (legacy 90% -> 75%, orders-v2 10% -> 25%)"],
        ),
        (
            config_with("{legacy: 60, orders-v2: 30, orders-v3: 10}"),
            config_with("{legacy: 20, orders-v2: 40, orders-v3: 40}"),
            [
                "orders: 30% moves legacy -> orders-v3, 10% moves legacy -> orders-v2"
                " (legacy 60% -> 20%, orders-v2 30% -> 40%, orders-v3 10% -> 40%)"
            ],
        ),
        (
            config_with("{legacy: 50, orders-v2: 50}"),
            config_with("{legacy: 20, orders-v2: 40, orders-v3: 40}"),
            [
                "orders: 30% moves legacy -> orders-v3, 10% moves orders-v2 -> orders-v3"
                " (legacy 50% -> 20%, orders-v2 50% -> 40%, orders-v3 0% -> 40%)"
            ],
        ),
        (
            config_with("{legacy: 100}", extra="    sticky: header:x-user-id\n"),
            config_with(
                "{legacy: 100, orders-v2: 0}",
                path="/api/v1/orders",
                extra="  - name: health\n    path: /health\n    target: orders-v2\n",
            )
            .replace("http://v2:8002", "http://v2:9002")
            .replace("lambda: orders-v3}", "lambda: orders-v3:live}"),
            [
                "orders: takes other requests (path: /api/orders -> /api/v1/orders)",
                "health (added): /health moves from no route (404) to orders-v2 100%",
                "added route health: /health -> orders-v2 100%",
                "orders: sticky: header:x-user-id -> (not set)",
                "target orders-v2: url: http://v2:8002 -> http://v2:9002",
                "target orders-v3: lambda: orders-v3 -> orders-v3:live",
            ],
        ),
        (
            config_with("{legacy: 90, orders-v2: 10}"),
            config_with("{legacy: 90, orders-v2: 10}"),
            ["no traffic changes"],
        ),
    ],
    ids=[
        "two-targets",
        "one-loser-two-gainers",
        "two-losers-one-gainer",
        "path-added-route-and-fields",
        "same",
    ],
)
def test_diff_names_traffic_moves_and_other_changes(
    old: str, new: str, expected: list[str]
) -> None:
    # GIVEN two versions of a route table
    before, after = parse_config(old, "old.yaml"), parse_config(new, "new.yaml")

    # WHEN they are compared
    lines = diff(before, after)

    # THEN traffic moves come first, then routes and targets
    assert lines == expected


def test_diff_verb_prints_the_changes_of_an_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the demo route table and a copy without the preview route, its canary widened
    assert PREVIEW_ROUTE in ROUTES_TEXT
    old = write(tmp_path, ROUTES_TEXT, "old.yaml")
    new = write(tmp_path, ROUTES_TEXT.replace(PREVIEW_ROUTE, ""), "new.yaml")
    assert gateway("shift", str(new), "orders", "orders-v2=25") == 0
    capsys.readouterr()

    # WHEN the verb compares them
    code = gateway("diff", str(old), str(new))

    # THEN it prints the traffic move and the removed route, and exits 0
    assert code == 0
    assert capsys.readouterr().out == (
        "orders: 15% moves legacy -> orders-v2 (legacy 90% -> 75%, orders-v2 10% -> 25%)\n"
        "orders-v2-preview (removed): /v2/orders moves from orders-v2 100%"
        " to everything-else (legacy 100%)\n"
        "removed route orders-v2-preview (/v2/orders)\n"
    )


def test_diff_verb_refuses_an_invalid_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a valid and an invalid route table
    old = write(tmp_path, ROUTES_TEXT, "old.yaml")
    new = write(tmp_path, INVALID_FILE, "new.yaml")

    # WHEN the verb compares them
    code = gateway("diff", str(old), str(new))

    # THEN it exits 1 with the problem
    assert code == 1
    assert "weights sum to 110, not 100" in capsys.readouterr().err


def test_a_node_edit_is_written_when_it_means_what_it_says(tmp_path: Path) -> None:
    # GIVEN the route table, and an edit of a route's node beyond its split (as the next
    # verbs make): `baseline: orders-v2` added to the orders route
    path = write(tmp_path, ROUTES_TEXT)

    def add_baseline(node: CommentedMap) -> None:
        node["baseline"] = "orders-v2"

    # WHEN it is applied without saying what it means, then saying it
    with pytest.raises(EditError) as refused:
        apply(path, "orders", Change(node=add_baseline))
    untouched = path.read_text(encoding="utf-8")
    means = Change(node=add_baseline, means=lambda r: dataclasses.replace(r, baseline="orders-v2"))
    result = apply(path, "orders", means)
    # THEN the unexplained edit is refused, the explained one written with every other line
    # kept, and the split left as it was
    assert "would change more than what the edit says it means" not in str(refused.value)
    assert "would change more than the split" in str(refused.value)
    assert untouched == ROUTES_TEXT
    assert result.changed and result.before == result.after
    edited = path.read_text(encoding="utf-8")
    assert load_config(str(path)).routes[0].baseline == "orders-v2"
    assert [line for line in edited.splitlines() if line not in ROUTES_TEXT.splitlines()] == [
        "    baseline: orders-v2"
    ]
