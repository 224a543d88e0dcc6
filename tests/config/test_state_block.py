"""The `state:` block through the loader: `gateway validate` and the gateway decide alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.load import load_config
from gateway.config.model import StateSettings

TABLE = """\
targets:
  legacy: {{url: "http://127.0.0.1:8001"}}
routes:
  - {{name: all, path: /, target: legacy}}
state:
{state}
"""


def write(tmp_path: Path, state: str) -> str:
    path = tmp_path / "routes.yaml"
    path.write_text(TABLE.format(state=state))
    return str(path)


@pytest.mark.parametrize(
    "case",
    [
        ("  redis: http://127.0.0.1:6379", 6, "state.redis", "not a redis:// or rediss://"),
        ("  redis: redis://127.0.0.1:6379\n  timeout: -5ms", 7, "state.timeout", "positive"),
        ("  redis: redis://127.0.0.1:6379\n  prefx: 'gw:'", 7, "state.prefx", "unknown key"),
        ("  redis: redis://h\n  on_unavailable: open", 7, "state.on_unavailable", "local or"),
    ],
    ids=["bad-url", "negative-timeout", "unknown-key", "bad-on-unavailable"],
)
def test_validate_refuses_a_bad_state_block_with_file_and_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[str, int, str, str],
) -> None:
    state, line, field, words = case
    # GIVEN a table whose state: block has one mistake, and no URL in the environment
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    path = write(tmp_path, state)

    # WHEN it is validated
    code = main(["validate", path])

    # THEN it exits 1 naming the file, the line and the field
    _, err = capsys.readouterr()
    assert code == 1
    assert f"{path}:{line}: {field}: " in err
    assert words in err


def test_a_good_state_block_is_frozen_in_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a full state: block
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    state = "  redis: rediss://cache:6379/0\n  prefix: 'gw:prod:'\n  timeout: 20ms\n"
    path = write(tmp_path, state + "  on_unavailable: closed")

    # WHEN it is loaded
    config = load_config(path)

    # THEN its settings are the config's
    assert config.state == StateSettings("rediss://cache:6379/0", "gw:prod:", 0.02, "closed")


def test_gateway_redis_url_overrides_the_block_and_alone_turns_state_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN GATEWAY_REDIS_URL set
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://10.0.0.9:6379/1")
    with_block = write(tmp_path, "  redis: redis://127.0.0.1:6379\n  timeout: 30ms")
    without = tmp_path / "plain.yaml"
    without.write_text(TABLE.partition("state:")[0].format())

    # WHEN a table with a state: block and one without are loaded
    overridden = load_config(with_block).state
    implied = load_config(str(without)).state

    # THEN the environment's URL wins; without a block it brings the defaults
    assert overridden == StateSettings("redis://10.0.0.9:6379/1", timeout=0.03)
    assert implied == StateSettings("redis://10.0.0.9:6379/1")


def test_without_state_or_url_every_limit_stays_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN no state: block and no GATEWAY_REDIS_URL
    monkeypatch.delenv("GATEWAY_REDIS_URL", raising=False)
    path = tmp_path / "plain.yaml"
    path.write_text(TABLE.partition("state:")[0].format())

    # WHEN it is loaded  THEN there is no shared state
    assert load_config(str(path)).state is None
