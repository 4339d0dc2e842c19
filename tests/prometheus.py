"""A real Prometheus for the tests: one server per test session (Debian's ``prometheus``
package, installed by ``scripts/install-test-deps.sh``), on 127.0.0.1 at a free port, with
its own data directory, scraping every second the targets a test names
(:meth:`PrometheusServer.scrape`), with the shipped alert rules loaded.

Prometheus 2.42 applies new targets on a 5-second tick, so the first samples of a target
come about 5 s after it is named: :meth:`wait_for_samples` polls for them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.server import free_port

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "monitoring" / "alerts.yml"
JOB = "dockyard"


class PrometheusError(RuntimeError):
    pass


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if not Path(PROMTOOL).exists():
        raise PrometheusError(
            f"{PROMTOOL} is missing: install the Debian package prometheus "
            "(scripts/install-test-deps.sh)"
        )
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, check=False)


@dataclass
class PrometheusServer:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls) -> PrometheusServer:
        if not Path(PROMETHEUS).exists():
            raise PrometheusError(
                f"{PROMETHEUS} is missing: install the Debian package prometheus "
                "(scripts/install-test-deps.sh)"
            )
        directory = Path(tempfile.mkdtemp(prefix="dockyard-prometheus-"))
        shutil.copy(RULES, directory / "alerts.yml")
        (directory / "targets.json").write_text("[]")
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {
                    "job_name": JOB,
                    "file_sd_configs": [
                        {"files": [str(directory / "targets.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))
        port = free_port()
        with (directory / "prometheus.log").open("wb") as log:
            process = subprocess.Popen(
                [PROMETHEUS, f"--config.file={directory / 'prometheus.yml'}",
                 f"--storage.tsdb.path={directory / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        server = cls(directory, port, process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PrometheusError(f"prometheus exited:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return server
            except OSError:
                time.sleep(0.1)
        server.stop()
        raise PrometheusError("prometheus did not become ready in 30s")

    def log_tail(self) -> str:
        path = self.directory / "prometheus.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def scrape(self, *targets: str) -> None:
        """Scrape these ``host:port`` targets (only these) from now on."""
        entries = [{"targets": list(targets), "labels": {}}] if targets else []
        temporary = self.directory / "targets.json.tmp"
        temporary.write_text(json.dumps(entries))
        os.replace(temporary, self.directory / "targets.json")

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now; raises on an evaluation error."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr}: a {data['resultType']}, not a vector")
        return list(data["result"])

    def wait_for_samples(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.query(expr)
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.25)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)
