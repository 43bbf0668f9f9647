"""The admin dashboard (GET / on the admin listener) in a real browser: Debian's headless
Chromium driven by playwright-core (t/browser/dashboard_test.mjs), against a running torii
under traffic. The page asks for the admin token, shows the upstream table with both targets
up, the plugin chain of a location, a requests/s chart that grows; then the test stops one
target and the page shows it down, a location whose backend answers 500 opens its breaker,
and the rate limit's 429s show in the locations table. Screenshots (laptop and phone) are
kept as artefacts in <build>/artifacts/. No request leaves loopback: the browser resolves no
name, and the script aborts and reports any request to another origin.

Also here, without a browser: the files are compiled in and served with their types and a
strict Content-Security-Policy, without the token (they hold no data), and /config, which the
page reads, shows the chains and needs the token.
"""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

import harness
from harness import config, main_block, plugin_block, request, server_block, upstream_block

REPO = os.path.dirname(os.path.dirname(harness.HERE))
BROWSER_DIR = os.path.join(REPO, "t", "browser")
TOKEN = "dashboard-test-token"


def _gateway(procs, targets, flaky):
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(),
        '[admin]\nlisten = "127.0.0.1:%d"\ntoken = "%s"\n' % (admin, TOKEN),
        plugin_block("stats"), plugin_block("ratelimit"), plugin_block("circuit_breaker"),
        upstream_block("api", [b.port for b in targets]),
        '[upstream.api.health]\ntype = "http"\npath = "/"\ninterval = "300ms"\n'
        'timeout = "200ms"\nhealthy = 1\nunhealthy = 1\n',
        upstream_block("flaky", [flaky.port]),
        server_block([port], [
            {"path": "/api/", "upstream": "api",
             "plugins": {"ratelimit": {"rate": 20, "burst": 5, "key": "$remote_addr"}}},
            {"path": "/flaky/", "upstream": "flaky",
             "plugins": {"circuit_breaker": {"consecutive_failures": 3, "error_ratio": 0,
                                             "cool_down": "60s"}}},
        ], plugins={"stats": {}}),
    )
    t = procs.torii(text, wait_ports=[port, admin])
    return port, admin, t


class Traffic:
    """Requests in a loop until stopped: /api/ faster than its rate limit allows, and
    /flaky/, whose backend answers 500."""

    def __init__(self, port):
        self.port = port
        self.stop_flag = threading.Event()
        self.codes = {}
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        deadline = time.monotonic() + 120  # bounded whatever happens to the test
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            for path in ("/api/x", "/api/y", "/flaky/status/500"):
                try:
                    code = request(self.port, "GET", path, timeout=5).status
                except Exception:
                    code = 0
                self.codes[code] = self.codes.get(code, 0) + 1
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)


def _artifact_dir():
    d = os.path.join(harness.build_dir(), "artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def test_dashboard_in_a_browser_under_traffic(procs):
    assert os.path.exists("/usr/bin/chromium"), "Debian's chromium is missing: run make deps"
    assert os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")), \
        "playwright-core is missing from t/browser: run make deps"
    a, b = procs.backend("a"), procs.backend("b")
    flaky = procs.backend("flaky")
    port, admin, t = _gateway(procs, [a, b], flaky)
    shots = _artifact_dir()
    for name in ("dashboard.png", "dashboard-phone.png"):
        if os.path.exists(os.path.join(shots, name)):
            os.unlink(os.path.join(shots, name))

    with Traffic(port) as traffic:
        node = subprocess.Popen(
            ["node", "dashboard_test.mjs", "http://127.0.0.1:%d/?interval=500" % admin, TOKEN,
             "127.0.0.1:%d" % b.port, "127.0.0.1:%d|/flaky/" % port, shots],
            cwd=BROWSER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        steps, result = [], None
        try:
            deadline = time.monotonic() + 120
            for line in node.stdout:
                line = line.strip()
                if line.startswith("STEP "):
                    steps.append(line[5:])
                elif line == "WAIT stop-target":
                    b.stop()
                    node.stdin.write("go\n")
                    node.stdin.flush()
                elif line.startswith(("OK", "FAIL")):
                    result = line
                    break
                assert time.monotonic() < deadline, steps
            node.wait(timeout=30)
        finally:
            harness.stop_process(node)
        stderr = node.stderr.read()

    assert result and result.startswith("OK"), (result, steps, stderr[-3000:], traffic.codes)
    assert steps == ["token", "targets-up", "chain", "chart", "target-down", "breaker-open",
                     "rate-limited", "screenshots"], steps
    assert json.loads(result[3:])["foreign"] == []  # nothing but the admin origin was asked
    for name in ("dashboard.png", "dashboard-phone.png"):
        with open(os.path.join(shots, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    # What the page showed is what the gateway did.
    assert traffic.codes.get(429) and traffic.codes.get(500) and traffic.codes.get(503), \
        traffic.codes
    assert harness.upstream_doc(admin, "api", token=TOKEN)["targets"][1]["health"] == "down"
    t.stop()


@pytest.fixture(scope="module")
def gw(module_procs):
    a = module_procs.backend("a")
    flaky = module_procs.backend("flaky")
    port, admin, t = _gateway(module_procs, [a], flaky)
    return admin


@pytest.mark.parametrize("path, ctype", [
    ("/", "text/html; charset=utf-8"),
    ("/dashboard/", "text/html; charset=utf-8"),
    ("/dashboard/dashboard.js", "text/javascript; charset=utf-8"),
    ("/dashboard/dashboard.css", "text/css; charset=utf-8"),
])
def test_files_are_served_without_the_token(gw, path, ctype):
    r = request(gw, "GET", path)
    assert r.status == 200 and r.header("Content-Type") == ctype, (path, r.status)
    assert "default-src 'self'" in r.header("Content-Security-Policy")
    assert r.header("X-Content-Type-Options") == "nosniff"
    src = {"/dashboard/dashboard.js": "modules/admin/dashboard/dashboard.js",
           "/dashboard/dashboard.css": "modules/admin/dashboard/dashboard.css"}.get(
               path, "modules/admin/dashboard/index.html")
    with open(os.path.join(REPO, src), "rb") as f:
        assert r.body == f.read()  # compiled in from the source tree, byte for byte


def test_unknown_file_and_post_are_refused(gw):
    assert request(gw, "GET", "/dashboard/nope.js").status == 401  # not a file: the token rule
    auth = {"Authorization": "Bearer " + TOKEN}
    assert request(gw, "GET", "/dashboard/nope.js", headers=auth).status == 404
    assert request(gw, "POST", "/", body=b"x").status == 405


def test_data_needs_the_token(gw):
    for path in ("/config", "/status", "/upstreams", "/metrics", "/circuit_breakers"):
        assert request(gw, "GET", path).status == 401, path
        assert request(gw, "GET", path,
                       headers={"Authorization": "Bearer " + TOKEN}).status == 200, path


def test_config_view_shows_chains_in_run_order(gw):
    r = request(gw, "GET", "/config", headers={"Authorization": "Bearer " + TOKEN})
    doc = r.json()
    assert r.header("Content-Type") == "application/json"
    assert doc["generation"] >= 1
    (server,) = doc["servers"]
    assert server["protocol"] == "http" and server["chain"]["log"] == [
        {"plugin": "stats", "from": "own"}]
    api, flaky = server["locations"]
    assert api["path"] == "/api/" and api["upstream"] == "api" and api["return"] is None
    assert api["chain"]["access"] == [{"plugin": "stats", "from": "inherited"},
                                      {"plugin": "ratelimit", "from": "own"}]
    assert api["chain"]["balance"] == {"balancer": "round_robin", "admitters": []}
    cb = {"plugin": "circuit_breaker", "from": "own"}
    assert flaky["chain"]["balance"]["admitters"] == [cb]
    assert cb in flaky["chain"]["access"]
    # plugin settings (which may hold secrets) are not part of the view
    assert "\"rate\"" not in r.text() and "cool_down" not in r.text()


def test_status_keeps_the_reload_history(procs, tmp_path):
    port, admin = harness.free_port(), harness.free_port()
    good = config(main_block(admin_port=admin),
                  server_block([port], [{"path": "/", "return": {"status": 200}}]))
    t = procs.torii(good, wait_ports=[port, admin])
    conf = t.config_path
    status = request(admin, "GET", "/status").json()
    assert status["reload_history"] == []
    os.kill(t.pid, signal.SIGHUP)
    assert harness.wait_until(lambda: request(admin, "GET", "/status").json()["generation"] == 2, 10)
    with open(conf, "a") as f:
        f.write("\n[broken\n")
    os.kill(t.pid, signal.SIGHUP)
    def failed():
        h = request(admin, "GET", "/status").json()["reload_history"]
        return len(h) == 2 and h
    history = harness.wait_until(failed, 10)
    assert history, request(admin, "GET", "/status").body
    ok, bad = history
    assert ok["ok"] is True and ok["generation"] == 2 and ok["error"] is None
    assert bad["ok"] is False and bad["generation"] == 2 and bad["error"], bad
    assert abs(bad["at"] - time.time()) < 30
