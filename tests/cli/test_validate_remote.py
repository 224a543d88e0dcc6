"""`gateway validate` on a table in S3 or SSM, as GATEWAY_CONFIG names it: checked by the same
loader the running gateway reads it with (real boto3 against moto's server mode)."""

from __future__ import annotations

import pytest

from gateway.cli.main import main
from tests.support.aws import remote_table

GOOD = (
    'targets: {legacy: {url: "http://legacy:8080"}}\n'
    "routes: [{name: all, path: /, target: legacy}]\n"
)
BAD = "targets: {legacy: {url: ftp://legacy}}\nroutes: []\n"


@pytest.mark.parametrize("kind", ["s3", "ssm"])
def test_validate_reads_a_remote_table(
    aws: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a good and a bad table in S3 or SSM
    good = remote_table(kind, "good-table", GOOD)
    bad = remote_table(kind, "bad-table", BAD)
    # WHEN each is validated, and one that is not there
    codes = [main(["validate", good]), main(["validate", bad])]
    missing = "s3://good-table/nope.yaml" if kind == "s3" else "ssm:/nope/routes"
    codes.append(main(["validate", missing]))
    out, err = capsys.readouterr()
    # THEN the good one is ok, the bad one's problem has its place, the missing one cannot be
    # read: each said, with exit 1 for both failures
    assert codes == [0, 1, 1]
    assert out == f"{good}: ok (1 targets, 1 routes)\n"
    assert f"{bad}:1: targets.legacy.url:" in err
    assert f"{missing}:0: source: cannot read" in err
