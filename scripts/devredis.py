"""Find a Redis for `make demo` / `make test`, or start a private one; print its URL.

usage: devredis.py ensure STATE_DIR   -> prints a URL (starts redis-server if none answers)
       devredis.py stop STATE_DIR     -> stops the server that `ensure` started, if any
Exit 3 from `ensure` means: no Redis answers and redis-server is not installed.
"""

import os
import sys
from pathlib import Path

from wowevent_kombu.testing.redisserver import RedisServer, answers, redis_server_binary


def ensure(state: Path) -> int:
    wanted = os.environ.get("WOWEVENT_BROKER_URL")
    if wanted:
        if answers(wanted):
            print(wanted)
            return 0
        print(f"WOWEVENT_BROKER_URL={wanted} does not answer PING", file=sys.stderr)
        return 2
    local = "redis://127.0.0.1:6379/0"
    if answers(local):
        print(local)
        return 0
    if redis_server_binary() is None:
        return 3
    state.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory=state / "redis").start()
    (state / "redis.port").write_text(str(server.port))
    print(
        f"no Redis answered on 127.0.0.1:6379; started a private redis-server on port "
        f"{server.port} (pid {server.pid})",
        file=sys.stderr,
    )
    print(server.url)
    return 0


def stop(state: Path) -> int:
    portfile = state / "redis.port"
    if not portfile.exists():
        return 0
    server = RedisServer(port=int(portfile.read_text()), directory=state / "redis")
    if server.pidfile.exists():
        server.pid = int(server.pidfile.read_text())
        server.stop()
        print(f"stopped the private redis-server (port {server.port})", file=sys.stderr)
    portfile.unlink()
    return 0


if __name__ == "__main__":
    command, state_dir = sys.argv[1], Path(sys.argv[2])
    sys.exit({"ensure": ensure, "stop": stop}[command](state_dir))
