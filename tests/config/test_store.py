"""The one config store: a file, an S3 object (moto's server) or an SSM parameter, read by the
running gateway, read and written back by the edit verbs and the rollout controller."""

from __future__ import annotations

import itertools
from pathlib import Path

import boto3
import pytest

from gateway.config.file_store import FileStore
from gateway.config.model import ConfigError
from gateway.config.store import ConfigStore, S3Store, SsmStore, store_for
from gateway.config.stored import ConcurrentEdit, Unreadable
from gateway.errors import CommandError
from gateway.rollouts.edit import EditError, shift
from tests.support.aws import remote_table, remote_text

TABLE = """# the route table, kept by every edit
targets:
  legacy: {url: "http://10.0.0.1"}   # the monolith
  orders-v2: {url: "http://10.0.0.2"}
routes:
  - name: orders
    path: /api/orders
    split: {legacy: 100, orders-v2: 0}  # canary
"""
KINDS = ["file", "s3", "ssm"]
NUMBERS = itertools.count()  # a fresh bucket or parameter per test: moto lives per module


def stored_table(kind: str, name: str, tmp_path: Path) -> str:
    """TABLE where KIND keeps it -> its GATEWAY_CONFIG spelling."""
    if kind == "file":
        path = tmp_path / "routes.yaml"
        path.write_text(TABLE, encoding="utf-8")
        return str(path)
    return remote_table(kind, name, TABLE)


def store_of(spec: str) -> ConfigStore:
    return FileStore(spec, settle=0) if not spec.startswith(("s3://", "ssm:")) else store_for(spec)


def overwrite(spec: str, text: str) -> None:
    """Someone else's write, straight to where the table lives."""
    if spec.startswith("s3://"):
        bucket, _, key = spec.removeprefix("s3://").partition("/")
        boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=text)
    elif spec.startswith("ssm:"):
        boto3.client("ssm").put_parameter(Name=spec[4:], Value=text, Overwrite=True)
    else:
        Path(spec).write_text(text, encoding="utf-8")


def text_of(spec: str) -> str:
    return remote_text(spec) if spec.startswith(("s3://", "ssm:")) else Path(spec).read_text()


@pytest.fixture
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind != "file":
        request.getfixturevalue("aws")
    return stored_table(kind, f"table-{next(NUMBERS)}-{kind}", tmp_path)


@pytest.mark.parametrize("location", KINDS, ids=KINDS, indirect=True)
def test_a_table_changed_since_it_was_read_is_not_overwritten(location: str) -> None:
    # GIVEN a command has read the table
    store = store_of(location)
    read = store.read()
    # WHEN someone else writes it before the command does
    other = TABLE.replace("# the route table", "# a colleague's edit; the route table")
    overwrite(location, other)
    # THEN the command's write is refused, and the colleague's edit stands
    with pytest.raises(ConcurrentEdit, match="changed"):
        store.write(TABLE.replace("orders-v2: 0", "orders-v2: 0 "), read)
    assert text_of(location) == other


@pytest.mark.parametrize("location", KINDS, ids=KINDS, indirect=True)
def test_what_a_command_writes_the_running_gateway_reads_once(location: str) -> None:
    # GIVEN the running gateway's side has read the table once
    store = store_of(location)
    first = store.read_if_changed()
    unchanged = store.read_if_changed()
    # WHEN a command writes a new version through the same kind of store
    written = TABLE.replace("orders-v2: 0}", "orders-v2: 0}  # soon")
    store_of(location).write(written, store_of(location).read())
    # THEN the reader sees it exactly once
    assert (first, unchanged) == (TABLE, None)
    assert (store.read_if_changed(), store.read_if_changed()) == (written, None)


@pytest.mark.parametrize("location", ["s3", "ssm"], ids=["s3", "ssm"], indirect=True)
def test_the_edit_verbs_edit_a_table_in_s3_or_ssm_keeping_its_comments(location: str) -> None:
    # GIVEN a route table in S3 or SSM
    # WHEN `gateway shift` edits it where it lives
    result = shift(location, "orders", "orders-v2", 25)
    # THEN only the split's line changed, its comment kept
    assert result.summary == "orders: legacy 100% -> 75%, orders-v2 0% -> 25%"
    assert text_of(location) == TABLE.replace("100, orders-v2: 0}", "75, orders-v2: 25}")


def test_an_unreadable_table_is_one_error_for_the_reloader_and_the_commands(
    tmp_path: Path,
) -> None:
    # GIVEN a location with no table
    missing = str(tmp_path / "nowhere.yaml")
    # WHEN the running gateway's side and a command read it
    with pytest.raises(Unreadable) as caught:
        FileStore(missing).read_if_changed()
    with pytest.raises(EditError) as edit:
        shift(missing, "orders", "orders-v2", 25)
    # THEN it is one error, a ConfigError (the reloader) and a CommandError (the commands),
    # naming the location
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, CommandError)
    assert "cannot read" in caught.value.problems[0].message
    assert str(edit.value).startswith(f"{missing}: route 'orders': cannot read: ")
    assert not Path(missing).exists()


def test_an_s3_location_without_a_key_is_refused_naming_it() -> None:
    # GIVEN / WHEN an S3 location without a key
    with pytest.raises(Unreadable) as caught:
        S3Store("s3://bucket-only")
    # THEN the error says how to write it
    assert "write s3://bucket/key" in str(caught.value)
    assert isinstance(caught.value, CommandError)
    assert SsmStore("ssm:/x").description == "ssm:/x"
