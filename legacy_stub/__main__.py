"""Run the legacy stub under uvicorn: `python -m legacy_stub --port 8001`."""

import argparse
from collections.abc import Sequence

import uvicorn

from legacy_stub.app import app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m legacy_stub", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
