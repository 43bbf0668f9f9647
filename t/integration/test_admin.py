"""The admin listener's /status (SPEC section 2, [admin])."""

import json
import re
import time
import types

import pytest

import harness
from harness import config, main_block, request, run_torii, server_block


@pytest.fixture(scope="module")
def gw(module_procs):
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(admin_port=admin),
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "hi\n"}}]),
    )
    t = module_procs.torii(text)
    return types.SimpleNamespace(port=port, admin=admin, torii=t)


def status(gw):
    r = request(gw.admin, "GET", "/status")
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type", "").split(";")[0].strip() == "application/json"
    doc = json.loads(r.body)
    assert isinstance(doc, dict)
    return doc


def test_status_document(gw):
    doc = status(gw)
    assert isinstance(doc.get("version"), str) and doc["version"], doc
    up = doc.get("uptime")
    assert isinstance(up, (int, float)) and not isinstance(up, bool), doc
    assert 0 <= up < 60, doc
    assert doc.get("config") == gw.torii.config_path, doc


def test_status_version_matches_cli(gw):
    doc = status(gw)
    out = run_torii(["-v"]).stdout
    assert re.search(r"(?<![\d.])" + re.escape(doc["version"]) + r"(?![\d.])", out), \
        "admin version %r not in `torii -v` output %r" % (doc["version"], out)


def test_uptime_grows(gw):
    first = status(gw)["uptime"]
    time.sleep(1.2)
    assert status(gw)["uptime"] > first


def test_unknown_admin_path_404(gw):
    assert request(gw.admin, "GET", "/no/such/thing").status == 404


def test_admin_and_proxy_ports_are_separate(gw):
    # the proxy port serves its locations, not the admin API
    r = request(gw.port, "GET", "/status")
    assert (r.status, r.body) == (200, b"hi\n")
