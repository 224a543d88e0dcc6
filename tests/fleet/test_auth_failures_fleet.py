"""Failed authentications counted by the fleet: a guesser spread over instances gets one
budget (`max_failures`), not one per instance."""

from __future__ import annotations

import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from gateway.admission.auth import hash_api_key
from tests.fleet.fleet_kit import SlowUpstream
from tests.support.servers import free_port, serve_in_thread, serve_process, write_config

KEY = "right-key"
ATTACKER, BYSTANDER = "203.0.113.66", "198.51.100.7"
TABLE = """\
state: {{redis: "{redis}", timeout: 1s}}
trusted_proxies: [127.0.0.1]
targets:
  legacy: {{url: "{up}", breaker: off}}
routes:
  - name: keyed
    path: /keyed
    target: legacy
    auth:
      api_keys: {{keys: ["{hashed}"]}}
      max_failures: 3/h
"""


def keyed(url: str, client: str, key: str) -> int:
    headers = {"X-Forwarded-For": client, "X-Api-Key": key}
    request = urllib.request.Request(f"{url}/keyed", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_guesses_spread_over_two_instances_share_one_budget(tmp_path: Path, redis_url: str) -> None:
    # GIVEN two gateway processes on one Redis, a route allowing 3 failed keys an hour
    with serve_in_thread(SlowUpstream(), lifespan="off") as up, ExitStack() as stack:
        text = TABLE.format(redis=redis_url, up=up, hashed=hash_api_key(KEY))
        config = write_config(tmp_path, text)
        urls = []
        for _ in range(2):
            port = free_port()
            argv = ["-m", "gateway.cli.main", "serve", config, "--port", str(port)]
            stack.enter_context(serve_process(argv, port, env={"GATEWAY_ACCESS_LOG": "off"}))
            urls.append(f"http://127.0.0.1:{port}")
        # WHEN one client guesses twice through the first and once through the second
        guesses = [keyed(urls[0], ATTACKER, "guess-1"), keyed(urls[0], ATTACKER, "guess-2")]
        guesses.append(keyed(urls[1], ATTACKER, "guess-3"))
        # ... then brings the right key to either
        right = [keyed(url, ATTACKER, KEY) for url in urls]
        bystander = [keyed(url, BYSTANDER, KEY) for url in urls]

    # THEN the three guesses used the one budget: the right key is refused everywhere (one
    # instance alone saw only two), and another client is not blocked
    assert guesses == [401, 401, 401]
    assert right == [429, 429]
    assert bystander == [200, 200]
