"""The ALB wire shape both ways: one text-or-base64 rule for the entry's answer and for the
event a Lambda target receives, and a target's answer read back byte for byte."""

from __future__ import annotations

import pytest

from gateway.alb.events import ALBEvent
from gateway.alb.target import target_answer, target_event
from gateway.errors import UpstreamUnavailable

BODIES = {
    "json-text": ([(b"content-type", b"application/json")], b'{"a": "\xc3\xa9"}'),
    "binary": ([(b"content-type", b"image/png")], b"\x89PNG\r\n\x1a\n\x00"),
    "gzipped-text": ([(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")], b"\x1f"),
    "text-not-utf8": ([(b"content-type", b"text/plain")], b"caf\xe9"),
    "empty": ([(b"content-type", b"text/plain")], b""),
}


@pytest.mark.parametrize("case", list(BODIES), ids=list(BODIES))
def test_a_body_is_text_or_base64_by_one_rule_both_ways(case: str) -> None:
    # GIVEN a body and its headers
    headers, body = BODIES[case]
    # WHEN it goes to a Lambda target, and when the entry answers an ALB with it
    event = target_event("POST", b"/p", b"", headers, body)
    answer = ALBEvent({"requestContext": {"elb": {}}, "multiValueHeaders": {}}, None).answer(
        200, headers, body
    )
    # THEN both encode it the same way, and the target's answer reads back to the same bytes
    assert (event["body"], event["isBase64Encoded"]) == (answer["body"], answer["isBase64Encoded"])
    status, _, read = target_answer({**answer, "statusCode": 200}, "fn", "target")
    assert (status, read) == (200, body)


def test_a_target_answer_with_broken_base64_is_a_502_naming_the_function() -> None:
    # GIVEN / WHEN an answer marked base64 that is not
    with pytest.raises(UpstreamUnavailable) as caught:
        target_answer({"statusCode": 200, "body": "no!", "isBase64Encoded": True}, "fn", "t")
    # THEN it is refused, naming the function and the target
    assert "function 'fn' answered a body marked isBase64Encoded" in caught.value.message
    assert caught.value.target == "t"
