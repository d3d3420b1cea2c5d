"""From a shell: python -m tests.services start|stop|status [postgres|redis]."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from tests.services.common import ServiceUnavailable
from tests.services.postgres import PG_PORT, probe_postgres, start_postgres, stop_postgres
from tests.services.redis import REDIS_PORT, probe_redis, start_redis, stop_redis


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start, stop or look at the local PostgreSQL and Redis used by the tests."
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("service", nargs="?", choices=["postgres", "redis"])
    args = parser.parse_args(argv)
    wanted = [args.service] if args.service else ["postgres", "redis"]
    labels = {"free": "not running", "ours": "running", "other": "port taken by another program"}
    try:
        if "postgres" in wanted:
            if args.action == "start":
                began = time.monotonic()
                server = start_postgres()
                print(f"postgres: {server.url} (ready in {time.monotonic() - began:.1f}s)")
            elif args.action == "stop":
                stop_postgres()
                print("postgres: stopped")
            else:
                print(f"postgres: {labels[probe_postgres(PG_PORT)]} on port {PG_PORT}")
        if "redis" in wanted:
            if args.action == "start":
                print(f"redis: {start_redis()}")
            elif args.action == "stop":
                stop_redis()
                print("redis: stopped")
            else:
                print(f"redis: {labels[probe_redis(REDIS_PORT)]} on port {REDIS_PORT}")
    except ServiceUnavailable as err:
        print(f"services: {err.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
