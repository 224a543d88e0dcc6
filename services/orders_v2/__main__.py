"""Run orders-v2 under uvicorn: `python -m services.orders_v2 --port 8002`."""

import argparse
from collections.abc import Sequence

import uvicorn

from services.orders_v2.app import app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.orders_v2", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
