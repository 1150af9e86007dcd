"""The real-client deployment: Redis, three sockhop processes, and nginx in front.

Built from the harness's pieces (start_redis, start_sockhop_processes,
wait_http_ready, the process registry), with an nginx configuration of our
own, because the real clients need three things the harness's nginx does not
have:

- static files: sockjs-client's own dist/sockjs.min.js (which the page and
  sockhop's /echo/iframe.html load: SOCKHOP_SOCKJS_URL points at it) and the
  test page;
- a second origin (another port of the same nginx) serving only the page, for
  the cross-origin browser runs;
- an access log naming the upstream of every request, so a test can show that
  one session's requests really reached several sockhop processes.

The proxy part is the harness's: HTTP/1.1 to the upstreams, round-robin with
no affinity and no upstream keep-alive (so every request is balanced anew),
buffering off, websocket upgrades passed through.
"""

from __future__ import annotations

import re
import textwrap
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support.procs import LOCALHOST, ManagedProcess, find_executable, free_port
from support.servers import (
    REPO_ROOT,
    Deployment,
    ProcessRegistry,
    restart_sockhop,
    start_redis,
    start_sockhop_processes,
    wait_http_ready,
)

JS_DIR = REPO_ROOT / "tests" / "js"
WEB_DIR = JS_DIR / "web"
NODE_MODULES = JS_DIR / "node_modules"
SOCKJS_DIST = NODE_MODULES / "sockjs-client" / "dist"
CENTRIFUGE_DIST = NODE_MODULES / "centrifuge" / "dist"
SOCKJS_PATH = "/static/sockjs/sockjs.min.js"
PAGE_PATH = "/static/web/index.html"
SOCKHOP_PROCESSES = 3
WORKERS_PER_PROCESS = 2

_LOG_LINE = re.compile(
    r"^(?P<msec>\S+) (?P<status>\d+) (?P<method>\S+) (?P<uri>\S+) up=(?P<up>.*)$"
)
# <service prefix, one or more segments>/<server id>/<session id>/<transport kind>
_SESSION_URI = re.compile(
    r"^(?:/[^/?]+)+/[^/?]+/(?P<session>[^/?]+)/(?P<kind>[a-z_]+)(?:\?.*)?$"
)


@dataclass
class ProxiedRequest:
    method: str
    uri: str
    status: int
    kind: str
    upstream: str


@dataclass
class ClientDeployment(Deployment):
    """A Deployment (so the harness prints its server logs on failure) plus the page origin."""

    page_port: int = 0
    access_log: Path | None = None
    sockjs_url: str = ""
    sockjs_path: Path = field(default=SOCKJS_DIST / "sockjs.min.js")

    @property
    def page_base_url(self) -> str:
        """The other origin: same nginx, another port, serving only the page and scripts."""
        return f"http://{self.host}:{self.page_port}"

    def nginx_errors(self, tail: int = 4000, ignore: Sequence[str] = ()) -> str:
        """The end of nginx's error log (warnings and errors only, none containing `ignore`)."""
        assert self.access_log is not None
        path = self.access_log.with_name("error.log")
        if not path.exists():
            return ""
        lines = [
            line
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if "[info]" not in line and "[notice]" not in line
            and not any(text in line for text in ignore)
        ]
        return "\n".join(lines)[-tail:]

    def session_requests(self) -> dict[str, list[ProxiedRequest]]:
        """Every proxied request of every SockJS session so far, by session id."""
        found: dict[str, list[ProxiedRequest]] = defaultdict(list)
        for session, request in self._proxied(0):
            found[session].append(request)
        return found

    def access_log_size(self) -> int:
        assert self.access_log is not None
        return self.access_log.stat().st_size if self.access_log.exists() else 0

    def session_requests_to(self, upstream: tuple[str, int], since: int) -> int:
        """How many session requests nginx sent to upstream in the log past offset `since`."""
        name = f"{upstream[0]}:{upstream[1]}"
        return sum(1 for _, request in self._proxied(since) if request.upstream == name)

    def _proxied(self, offset: int) -> Iterator[tuple[str, ProxiedRequest]]:
        """(session id, request) for each session request in the access log past offset."""
        assert self.access_log is not None
        with self.access_log.open("rb") as log:
            log.seek(offset)
            text = log.read().decode("utf-8", errors="replace")
        for line in text.splitlines():
            entry = _LOG_LINE.match(line)
            if not entry:
                continue
            session = _SESSION_URI.match(entry["uri"])
            if not session:
                continue
            upstreams = [u.strip() for u in entry["up"].split(",") if u.strip() not in ("", "-")]
            yield session["session"], ProxiedRequest(
                method=entry["method"],
                uri=entry["uri"],
                status=int(entry["status"]),
                kind=session["kind"],
                upstream=upstreams[-1] if upstreams else "-",
            )

    def restart_backend(self, registry: ProcessRegistry, index: int) -> ManagedProcess:
        """SIGTERM sockhop process `index`, start it again on its port once it has
        exited, and return the old process (its returncode: 0 if it drained and exited
        by itself)."""
        old = next(p for p in self.servers if p.name == f"{self.name}-sockhop{index}")
        new = restart_sockhop(registry, old, self.backends[index], workers=WORKERS_PER_PROCESS)
        self.servers[self.servers.index(old)] = new
        return old


# Both origins serve sockjs-client, centrifuge-js and the test pages.
STATIC_LOCATIONS = """
    location /static/sockjs/ {{ alias {dist}/; add_header Cache-Control "no-store"; }}
    location /static/centrifuge/ {{ alias {centrifuge}/; add_header Cache-Control "no-store"; }}
    location /static/web/ {{ alias {web}/; add_header Cache-Control "no-store"; }}
"""


def nginx_config(
    prefix: Path,
    api_port: int,
    page_port: int,
    backends: Sequence[tuple[str, int]],
    upstream_params: str = "",
    more_api_ports: Sequence[int] = (),
    http_directives: Sequence[str] = (),
    proxy_directives: Sequence[str] = (),
) -> str:
    """more_api_ports: more ports of the sockhop origin's server, each its own origin
    to a browser, so each has its own six-connection pool (see HubDeployment).
    http_directives / proxy_directives: more lines for the http block / the proxying
    location (e.g. the cluster simulation's Service stand-in)."""
    params = f" {upstream_params}" if upstream_params else ""
    servers = "\n".join(f"        server {host}:{port}{params};" for host, port in backends)
    return textwrap.dedent(
        """\
        user root;
        worker_processes 1;
        error_log {prefix}/error.log info;
        pid {prefix}/nginx.pid;

        events {{
            worker_connections 1024;
        }}

        http {{
            log_format upstreams '$msec $status $request_method $request_uri up=$upstream_addr';
            access_log {prefix}/access.log upstreams;
            client_body_temp_path {prefix}/client_body;
            proxy_temp_path {prefix}/proxy;
            fastcgi_temp_path {prefix}/fastcgi;
            uwsgi_temp_path {prefix}/uwsgi;
            scgi_temp_path {prefix}/scgi;
            client_max_body_size 4m;{http_directives}

            types {{
                text/html html;
                application/javascript js;
                application/json json map;
            }}
            default_type application/octet-stream;
            charset utf-8;
            charset_types application/javascript;

            map $http_upgrade $connection_upgrade {{
                default upgrade;
                ''      close;
            }}

            upstream sockhop {{
        {servers}
            }}

            # The sockhop origin: the SockJS services, plus sockjs-client and the page.
            server {{
                listen {host}:{api_port};{more_listens}

                {static}
                location / {{
                    proxy_pass http://sockhop;
                    proxy_http_version 1.1;
                    proxy_buffering off;
                    proxy_request_buffering off;
                    proxy_set_header Host $http_host;
                    proxy_set_header Upgrade $http_upgrade;
                    proxy_set_header Connection $connection_upgrade;
                    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                    proxy_read_timeout 3600s;
                    proxy_send_timeout 3600s;{proxy_directives}
                }}
            }}

            # Another origin: only the page and the scripts, for cross-origin runs.
            server {{
                listen {host}:{page_port};

                {static}
                location / {{
                    return 404;
                }}
            }}
        }}
        """
    ).format(
        prefix=prefix,
        host=LOCALHOST,
        api_port=api_port,
        more_listens="".join(f"\n        listen {LOCALHOST}:{port};" for port in more_api_ports),
        page_port=page_port,
        servers=servers,
        static=STATIC_LOCATIONS.format(dist=SOCKJS_DIST, centrifuge=CENTRIFUGE_DIST, web=WEB_DIR),
        http_directives="".join(f"\n    {line}" for line in http_directives),
        proxy_directives="".join(f"\n            {line}" for line in proxy_directives),
    )


def free_ports(count: int) -> list[int]:
    """count distinct free ports, known before anything starts (the servers are told
    URLs on them)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def two_free_ports() -> tuple[int, int]:
    """The sockhop origin's port and the page origin's port."""
    api_port, page_port = free_ports(2)
    return api_port, page_port


def start_nginx(
    registry: ProcessRegistry,
    name: str,
    api_port: int,
    page_port: int,
    backends: Sequence[tuple[str, int]],
    *,
    ready_path: str,
    upstream_params: str = "",
    more_api_ports: Sequence[int] = (),
) -> tuple[ManagedProcess, Path]:
    """nginx in front of backends (see nginx_config); returns it and its access log once
    ready_path answers through it from every backend and the page origin serves the page."""
    prefix = registry.log_dir / f"{name}-nginx-{api_port}"
    prefix.mkdir(parents=True, exist_ok=True)
    config = prefix / "nginx.conf"
    config.write_text(
        nginx_config(prefix, api_port, page_port, backends, upstream_params, more_api_ports)
    )
    argv = [find_executable("nginx"), "-g", "daemon off;", "-p", str(prefix), "-c", str(config)]
    proxy = registry.start(f"{name}-nginx", argv)
    # One probe per backend (each probe is a new request, so round-robin visits them all).
    wait_http_ready([proxy], [(LOCALHOST, api_port)] * len(backends), ready_path)
    wait_http_ready([proxy], [(LOCALHOST, page_port)], PAGE_PATH)
    return proxy, prefix / "access.log"


def deploy_for_clients(
    registry: ProcessRegistry, name: str, *, upstream_params: str = ""
) -> ClientDeployment:
    """Redis + three `sockhop serve --workers 2 --examples` + nginx (round-robin, no affinity).

    upstream_params go on each upstream `server` line (e.g. "max_fails=0": never
    set a refusing process aside, keep round-robin strict through restarts).
    """
    redis = start_redis(registry, f"{name}-redis")
    api_port, page_port = two_free_ports()
    # Known before nginx starts, because sockhop reads it at start.
    sockjs_url = f"http://{LOCALHOST}:{api_port}{SOCKJS_PATH}"
    servers, backends = start_sockhop_processes(
        registry,
        name,
        redis.url,
        count=SOCKHOP_PROCESSES,
        workers=WORKERS_PER_PROCESS,
        env={"SOCKHOP_SOCKJS_URL": sockjs_url},
    )
    servers.insert(0, redis.proc)
    proxy, access_log = start_nginx(
        registry,
        name,
        api_port,
        page_port,
        backends,
        ready_path="/echo/info",
        upstream_params=upstream_params,
    )
    return ClientDeployment(
        name=name,
        kind="sockhop",
        host=LOCALHOST,
        port=api_port,
        servers=servers,
        proxy=proxy,
        env={"SOCKHOP_SOCKJS_URL": sockjs_url},
        backends=list(backends),
        page_port=page_port,
        access_log=access_log,
        sockjs_url=sockjs_url,
    )
