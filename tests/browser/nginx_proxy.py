"""Debian's nginx as a child process of a test, in front of app replicas: docs/nginx-replicas.conf, run as is.

:func:`serve_nginx` renders the documented site config with the test's ports (the two ``server``
lines of its upstream and its ``listen``), wraps it in a main config whose every path (pid, logs, temp
folders, lock) lies in a temporary folder, and runs ``nginx -g 'daemon off;'``-style in the
foreground as one process (``master_process off``), so the test owns it and stops it with a signal.
Nothing under /etc, /var or /run is read or written, and no root is needed (as root, the one process
stays root instead of switching to ``nobody``, who could not write the test's folders).

``.ci/ensure_nginx.sh`` installs the package; without it the tests that need it skip with a reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SITE_CONF = ROOT / "docs" / "nginx-replicas.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SKIP_REASON = "the replica tests need Debian's nginx (bash .ci/ensure_nginx.sh, or apt-get install nginx)"
DOC_PORTS = (8501, 8502)
START_TIMEOUT_S = 30.0

#: One line per request: enough to tell which replica served what, and whether a websocket was proxied.
LOG_FORMAT = '$status "$request" upstream=$upstream_addr route=$cookie_lb_route upgrade=$http_upgrade'


def nginx_available() -> bool:
    return Path(NGINX).is_file() and os.access(NGINX, os.X_OK)


def render_site(listen_port: int, upstream_ports: tuple[int, int], text: str | None = None) -> str:
    """docs/nginx-replicas.conf with the test's ports; fails loudly if the file no longer has its three lines."""
    text = SITE_CONF.read_text() if text is None else text
    for doc_port, port in zip(DOC_PORTS, upstream_ports):
        text, n = re.subn(rf"^(\s*server\s+127\.0\.0\.1:){doc_port};", rf"\g<1>{port};", text, flags=re.M)
        if n != 1:
            raise AssertionError(f"{SITE_CONF.name}: expected one upstream line `server 127.0.0.1:{doc_port};`")
    text, n = re.subn(r"^(\s*)listen\s+80;", rf"\g<1>listen 127.0.0.1:{listen_port};", text, flags=re.M)
    if n != 1:
        raise AssertionError(f"{SITE_CONF.name}: expected one `listen 80;` line")
    return text


def main_conf(tmp: Path, site: Path) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = "\n".join(f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                         "scgi"))
    return f"""{user}daemon off;
master_process off;
pid {tmp / 'nginx.pid'};
lock_file {tmp / 'nginx.lock'};
error_log {tmp / 'error.log'} info;
events {{ worker_connections 256; }}
http {{
    log_format replicas '{LOG_FORMAT}';
    access_log {tmp / 'access.log'} replicas;
{temps}
    include {site};
}}
"""


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=5) as resp:
            return resp.read().decode().strip() == "ok"
    except OSError:
        return False


@contextlib.contextmanager
def serve_nginx(tmp: Path, listen_port: int, upstream_ports: tuple[int, int]) -> Iterator[tuple[str, Path]]:
    """nginx on ``listen_port`` in front of ``upstream_ports``; yields (its URL, its access log) once it proxies."""
    tmp.mkdir(parents=True, exist_ok=True)
    site = tmp / "site.conf"
    site.write_text(render_site(listen_port, upstream_ports))
    conf = tmp / "nginx.conf"
    conf.write_text(main_conf(tmp, site))
    cmd = [NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]
    check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise RuntimeError(f"nginx refused the config:\n{check.stderr}")
    url = f"http://127.0.0.1:{listen_port}"
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _health(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                errors = (tmp / "error.log").read_text(errors="replace") if (tmp / "error.log").exists() else ""
                raise RuntimeError(f"nginx did not proxy {url}:\n{errors[-3000:]}")
            time.sleep(0.2)
        yield url, tmp / "access.log"
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful: finish open requests, close websockets
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def upstream_of(url: str, route: str | None = None, path: str = "/_stcore/health") -> str:
    """Which replica (``host:port``) nginx sends a request to, with ``lb_route`` = ``route`` (or none)."""
    req = urllib.request.Request(f"{url}{path}", headers={"Cookie": f"lb_route={route}"} if route else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["X-Upstream"]


def access_log(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []
