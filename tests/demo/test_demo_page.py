"""The README's first command, `sockhop serve --demo`, and its chat page in headless Chromium.

Four people open the page, each in their own browser context: one over a native
websocket, two over SockJS (xhr-streaming, xhr-polling), one leaving the default
(websocket, then SockJS). Each says one thing once everyone is in the channel;
every page must show every line exactly once, the transport its person picked, and
everyone in its presence panel.
The server is one `sockhop serve --demo` process with its embedded Valkey and two
workers, so the pages' connections and requests land on either worker.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from clients.jsrun import JsRunner
from support import http

from .conftest import DemoServer

DRIVER = Path(__file__).with_name("chat_pages.js")
PAGE_TIMEOUT_MS = 20_000
DRIVER_TIMEOUT = 120.0

pytestmark = pytest.mark.timeout(DRIVER_TIMEOUT + 60)


@dataclass(frozen=True)
class Person:
    name: str
    picks: str  # a value of the page's transport selector
    shown: str  # what the page must then show as the transport in use (centrifuge-js's name)
    pick: str = "form"  # how: in the form, or with ?transport= in the URL


PEOPLE = [
    Person("wendy", picks="websocket", shown="websocket"),
    Person("stella", picks="sockjs-xhr-streaming", shown="sockjs-xhr-streaming"),
    Person("polly", picks="sockjs-xhr-polling", shown="sockjs-xhr-polling", pick="query"),
    Person("otto", picks="auto", shown="websocket"),
]
PEOPLE_IDS = [p.name for p in PEOPLE]


def page_url(server: DemoServer, person: Person) -> str:
    if person.pick == "query":
        return server.url(f"/?transport={person.picks}&name={person.name}")
    return server.url("/")


@pytest.fixture(scope="module")
def said() -> dict[str, str]:
    """What each person says: unique to this run."""
    run = uuid.uuid4().hex[:8]
    return {p.name: f"hello from {p.name} ({run})" for p in PEOPLE}


@pytest.fixture(scope="module")
def chat_run(
    demo_server: DemoServer,
    said: dict[str, str],
    chromium: str,
    js_runner: JsRunner,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Every page's result, from one Chromium driver process."""
    job = {
        "chromium": chromium,
        "timeoutMs": PAGE_TIMEOUT_MS,
        "pages": [
            {"id": p.name, "url": page_url(demo_server, p), "name": p.name,
             "transport": p.picks, "pick": p.pick, "text": said[p.name]}
            for p in PEOPLE
        ],
    }
    return js_runner.run(str(DRIVER), job, tmp_path_factory.mktemp("demo-chromium"),
                         DRIVER_TIMEOUT)


def page_result(run: dict[str, Any], person: Person) -> dict[str, Any]:
    result = run.get("pages", {}).get(person.name)
    if result is None:
        pytest.fail(f"the driver never opened {person.name}'s page: {run.get('error')}\n"
                    f"{run.get('script_log', '')}")
    if result.get("error"):
        pytest.fail(f"{person.name}'s page ({person.picks}): {result['error']}; "
                    f"state {result.get('state')!r}, shown {result.get('transportShown')!r}\n"
                    f"page errors: {result['pageErrors']}\nconsole: {result['console']}\n"
                    f"failed requests: {result['failedRequests']}")
    return result


def test_page_loads_the_configured_scripts(demo_server: DemoServer) -> None:
    """The page names the script URLs it was given (no CDN here), and they serve the scripts."""
    page = http.get(demo_server, "/")
    assert page.status == 200, page.text
    assert page.header("Content-Type").startswith("text/html")
    for url, package in ((demo_server.centrifuge_url, "centrifuge"),
                         (demo_server.sockjs_url, "sockjs-client")):
        assert f'<script src="{url}"></script>' in page.text
        assert f"/{package}/dist/" in url
    for path in ("/chat.js", "/style.css"):
        assert http.get(demo_server, path).status == 200, path


@pytest.mark.parametrize("person", PEOPLE, ids=PEOPLE_IDS)
def test_page_shows_the_transport_picked(person: Person, chat_run: dict[str, Any]) -> None:
    """The selector holds the pick (from the form or ?transport=), and the page shows the
    transport centrifuge-js connected with."""
    result = page_result(chat_run, person)
    assert result["selected"] == person.picks
    assert result["transportShown"] == person.shown
    assert result["state"] == "subscribed"
    assert not result["pageErrors"]


@pytest.mark.parametrize("person", PEOPLE, ids=PEOPLE_IDS)
def test_every_line_reaches_every_page_once(
    person: Person, chat_run: dict[str, Any], said: dict[str, str]
) -> None:
    """What each person said, under their name, once, on this person's page."""
    result = page_result(chat_run, person)
    lines = [(m["author"], m["text"]) for m in result["messages"]]
    for speaker, text in said.items():
        assert lines.count((speaker, text)) == 1, (speaker, lines)
    assert len(lines) == len(said), lines


@pytest.mark.parametrize("person", PEOPLE, ids=PEOPLE_IDS)
def test_page_lists_everyone_online(person: Person, chat_run: dict[str, Any]) -> None:
    """The presence panel: the channel's presence when subscribed, then join pushes."""
    result = page_result(chat_run, person)
    assert sorted(result["online"]) == sorted(PEOPLE_IDS)


def test_token_endpoint_names_the_user(demo_server: DemoServer) -> None:
    """POST /demo/token: an HS256 token for the name sent, expiring later (the hub checks
    the signature; here only what it says)."""
    reply = http.post(demo_server, "/demo/token", '{"name": " ann "}',
                      headers={"Content-Type": "application/json"})
    assert reply.status == 200, reply.text
    token = json.loads(reply.text)["token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == "ann"
    assert claims["info"] == {"name": "ann"}
    assert claims["exp"] > time.time() + 60


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[]", '{"name": ""}', '{"name": 7}', '{"name": "' + "x" * 33 + '"}',
     '{"name": "a\\nb"}'],
)
def test_token_endpoint_refuses_bad_requests(demo_server: DemoServer, body: str) -> None:
    reply = http.post(demo_server, "/demo/token", body)
    assert reply.status == 400
    assert reply.header("Content-Type").startswith("text/plain")
    assert reply.text and not reply.text.startswith("{")
