"""``python -m customer_segmentation.warehouse status|stop [--path data/warehouse]``: the embedded server."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from customer_segmentation.warehouse import embedded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m customer_segmentation.warehouse",
        description="Status or stop of the project's shared embedded warehouse server.",
    )
    parser.add_argument("command", choices=["status", "stop"])
    parser.add_argument(
        "--path",
        type=Path,
        default=Path("data/warehouse"),
        help="the warehouse folder (default: data/warehouse)",
    )
    args = parser.parse_args(argv)
    if args.command == "status":
        status = embedded.server_status(args.path)
        if status is None:
            sys.stdout.write(f"No embedded warehouse server is running for {args.path.resolve()}.\n")
            return 1
        sys.stdout.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
        return 0
    stopped = embedded.stop_server(args.path)
    sys.stdout.write(
        f"Stopped the embedded warehouse server for {args.path.resolve()}.\n"
        if stopped
        else f"No embedded warehouse server was running for {args.path.resolve()}.\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
