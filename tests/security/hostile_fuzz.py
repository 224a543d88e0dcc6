"""Hypothesis fuzz of the config loader with hostile YAML, run by test_hostile_yaml.py in a
child interpreter under a memory limit: `python -m tests.security.hostile_fuzz EXAMPLES`.

Exits 0 when every example loaded or was refused with a short ConfigError; any other
exception, or an over-long refusal, is a failure hypothesis shrinks and prints.
"""

from __future__ import annotations

import sys
import warnings

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config.load import load_text
from gateway.config.model import ConfigError

MAX_REFUSAL_CHARS = 100_000
TAGS = ["!!python/object:os.system", "!!python/object/apply:os.getcwd", "!!python/name:os.system",
        "!!binary", "!!set", "!!omap", "!!timestamp", "!!float", "!!int", "!!str", "!!map",
        "!!seq", "!unknown", "!<tag:yaml.org,2002:python/tuple>", "!!null"]  # fmt: skip
SCALARS = st.one_of(
    st.sampled_from(["legacy", "/", "/api", "http://127.0.0.1:1", "10.0.0.1/8", "0/s", "~", "''",
                     "null", "1e999", "-.inf", ".nan", "0x1F", "2001-12-14", "yes", "on", "*"]),
    st.integers(min_value=0, max_value=3).map(lambda n: "x" * (10 ** (n + 3))),
    st.text(max_size=12),
)  # fmt: skip


@st.composite
def values(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(min_value=0, max_value=6 if depth < 4 else 1))
    tag = f"{draw(st.sampled_from(TAGS))} " if draw(st.booleans()) and depth else ""
    if kind <= 1:
        return tag + repr(draw(SCALARS)) if kind == 0 else tag + draw(st.just('"x"'))
    if kind == 2:
        items = draw(st.lists(values(depth + 1), max_size=4))
        return tag + "[" + ", ".join(items) + "]"
    if kind == 3:
        keys = draw(st.lists(st.sampled_from(["url", "lambda", "name", "path", "target", "split",
                                              "auth", "jwt", "rate", "<<", "a", "b"]),
                             max_size=4, unique=True))  # fmt: skip
        return tag + "{" + ", ".join(f"{k}: {draw(values(depth + 1))}" for k in keys) + "}"
    if kind == 4:
        level = draw(st.integers(min_value=1, max_value=400))
        return "[" * level + "]" * level
    if kind == 5:
        return "*a"
    return "&a " + draw(values(depth + 1))


@st.composite
def documents(draw: st.DrawFn) -> str:
    laughs = draw(st.integers(min_value=0, max_value=9))
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, laughs)]
    keys = ["targets", "routes", "trusted_proxies", "x"]
    for key in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=4, unique=True)):
        value = f"*l{laughs - 1}" if laughs > 1 and draw(st.booleans()) else draw(values())
        lines.append(f"{key}: {value}")
    return "\n".join(lines) + "\n"


def check(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml")
    except ConfigError as refusal:
        message = str(refusal)
        if len(message) > MAX_REFUSAL_CHARS:
            raise AssertionError(f"refusal of {len(message)} chars") from None


def main(examples: int) -> None:
    @settings(derandomize=True, database=None, deadline=None, max_examples=examples)
    @given(documents())
    def fuzz(text: str) -> None:
        check(text)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ruamel warns on some odd input; the answer matters
        fuzz()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
