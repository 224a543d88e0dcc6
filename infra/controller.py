"""The scheduled rollout controller, as the template deploys it and as a cron job can run it.

On Lambda the handler is `gateway.rollouts.lambda_entry.handler` (the zip carries the `gateway`
package only; see infra/package.py): an EventBridge rule invokes it every minute, and it
judges each route's rollout once, with ROLLOUT_CONFIG, ROLLOUT_ROUTES and METRICS from its
environment. The same pass runs anywhere with AWS credentials and that environment:

    ROLLOUT_CONFIG=s3://acme-gateway/routes.yaml METRICS=cloudwatch:StranglerGateway \\
        .venv/bin/python infra/controller.py
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

from gateway.rollouts.lambda_entry import RolloutFailed, handler

__all__ = ["handler", "main"]


def main() -> int:
    """One scheduled pass, now; 1 when a route could not be judged."""
    try:
        result = handler({"time": datetime.now(UTC).isoformat()}, None)
    except RolloutFailed as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
