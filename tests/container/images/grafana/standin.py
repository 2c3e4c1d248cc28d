"""Grafana's part of the compose stack, for the tests: provisioning loaded, /api/health served.

Reads what Grafana would: the data sources and dashboard providers under
/etc/grafana/provisioning and the dashboards they point at. /api/health answers 200 once every
data source's URL answers Prometheus's /-/ready, as Grafana's own health does for its database.
"""

import json
import os
import signal
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

PROVISIONING = Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))


def load() -> tuple[list[str], list[str]]:
    """The data sources' URLs and the provisioned dashboards' titles; raises when one is broken."""
    urls = []
    for path in sorted((PROVISIONING / "datasources").glob("*.y*ml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            urls.append(os.environ.get("STANDIN_DATASOURCE_URL", source["url"]))
    titles = []
    for path in sorted((PROVISIONING / "dashboards").glob("*.y*ml")):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            for board in sorted(Path(provider["options"]["path"]).glob("*.json")):
                titles.append(json.loads(board.read_text())["title"])
    if not urls or not titles:
        raise SystemExit(f"nothing provisioned: data sources {urls}, dashboards {titles}")
    return urls, titles


URLS, TITLES = load()


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/api/health":
            self.send_error(404)
            return
        try:
            for url in URLS:
                urllib.request.urlopen(f"{url}/-/ready", timeout=3).close()
        except OSError as exc:
            self.send_error(503, str(exc))
            return
        body = json.dumps({"database": "ok", "dashboards": TITLES}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    # PID 1 ignores SIGTERM without a handler: `docker stop` would wait out the grace period.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    address = os.environ.get("GF_SERVER_HTTP_ADDR", "127.0.0.1")
    port = int(os.environ.get("GF_SERVER_HTTP_PORT", "3000"))
    print(f"grafana stand-in: dashboards {TITLES} on {address}:{port}", flush=True)
    ThreadingHTTPServer((address, port), Health).serve_forever()
