"""From a shell: python -m tests.services start|stop|status [postgres|redis|mariadb]."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from tests.services.common import PortState, ServiceUnavailable
from tests.services.mariadb import MARIADB_PORT, probe_mariadb, start_mariadb, stop_mariadb
from tests.services.postgres import PG_PORT, probe_postgres, start_postgres, stop_postgres
from tests.services.redis import REDIS_PORT, probe_redis, start_redis, stop_redis

LABELS = {"free": "not running", "ours": "running", "other": "port taken by another program"}


class Service(NamedTuple):
    start: Callable[[], object]
    stop: Callable[[], None]
    probe: Callable[[int], PortState]
    port: int


SERVICES = {
    "postgres": Service(start_postgres, stop_postgres, probe_postgres, PG_PORT),
    "redis": Service(start_redis, stop_redis, probe_redis, REDIS_PORT),
    "mariadb": Service(start_mariadb, stop_mariadb, probe_mariadb, MARIADB_PORT),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start, stop or look at the local PostgreSQL, Redis and MariaDB of the tests."
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("service", nargs="?", choices=list(SERVICES))
    args = parser.parse_args(argv)
    try:
        for name in [args.service] if args.service else list(SERVICES):
            service = SERVICES[name]
            if args.action == "start":
                began = time.monotonic()
                where = service.start()
                print(f"{name}: {where} (ready in {time.monotonic() - began:.1f}s)")
            elif args.action == "stop":
                service.stop()
                print(f"{name}: stopped")
            else:
                print(f"{name}: {LABELS[service.probe(service.port)]} on port {service.port}")
    except ServiceUnavailable as err:
        print(f"services: {err.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
