"""The machine's target table through the admin API (SPEC section 2, [admin];
docs/upstreams.md): GET /upstreams, adding, draining and removing targets with traffic
following on every worker, changes kept in [admin] state_file across reload and restart,
the admin token, and passive health counted across workers.

Each gateway runs two workers; requests go on fresh connections so both serve them.
"""

import collections
import json
import os
import signal
import time

import harness
from harness import config, main_block, request, server_block, upstream_block


def gateway(procs, backends, workers=2, admin_opts=None, ups=None, extra=""):
    port, admin = harness.free_port(), harness.free_port()
    admin_items = {"listen": "%s:%d" % (harness.HOST, admin)}
    admin_items.update(admin_opts or {})
    admin_text = "[admin]\n" + "".join(
        "%s = %s\n" % (k, json.dumps(v)) for k, v in admin_items.items())
    opts = dict(keepalive=4, connect_timeout="1s", read_timeout="5s", retries=1)
    opts.update(ups or {})
    text = config(main_block(workers=workers), admin_text,
                  upstream_block("api", [b.port for b in backends], **opts),
                  server_block([port], [{"path": "/", "upstream": "api"}]), extra)
    t = procs.torii(text)
    t.port, t.admin = port, admin
    return t


def api(t, method, path, body=None, token=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return request(t.admin, method, path, body=body, headers=headers)


def upstream_doc(t, token=None):
    r = api(t, "GET", "/upstreams", token=token)
    assert r.status == 200, r.body
    return json.loads(r.body)["upstreams"]["api"]


def targets_by_address(t, token=None):
    return {x["address"]: x for x in upstream_doc(t, token)["targets"]}


def spread(t, n=24):
    """Backend names answering n requests, each on a fresh connection."""
    names = collections.Counter()
    for i in range(n):
        r = request(t.port, "GET", "/spread?i=%d" % i)
        names[json.loads(r.body)["backend"] if r.status == 200 else r.status] += 1
    return names


def addr(b):
    return "%s:%d" % (harness.HOST, b.port)


def test_get_upstreams_shows_the_table(procs):
    b1, b2 = procs.backend("b1"), procs.backend("b2")
    t = gateway(procs, [b1, b2], ups={"balancer": "round_robin"},
                extra="")
    doc = upstream_doc(t)
    assert doc["balancer"] == "round_robin" and doc["protocol"] == "http1", doc
    assert doc["health_check"] is None and doc["discovery"] is None, doc
    got = targets_by_address(t)
    assert set(got) == {addr(b1), addr(b2)}, got
    for x in got.values():
        assert x["source"] == "config" and x["health"] == "up" and x["weight"] == 1, x
        assert x["in_flight"] == 0 and x["last_failure"] is None and x["check"] is None, x
        assert len(x["id"]) == 16 and int(x["id"], 16) >= 0, x
    # GET /upstreams/NAME is that one upstream; an unknown one is 404 in JSON.
    one = json.loads(api(t, "GET", "/upstreams/api").body)
    assert {x["address"] for x in one["targets"]} == set(got)
    r = api(t, "GET", "/upstreams/nope")
    assert r.status == 404 and "nope" in json.loads(r.body)["error"]


def test_add_drain_and_remove_with_traffic_following(procs):
    b1, b2 = procs.backend("b1"), procs.backend("b2")
    t = gateway(procs, [b1])
    assert set(spread(t, 8)) == {"b1"}

    r = api(t, "POST", "/upstreams/api/targets", {"address": addr(b2), "weight": 2})
    assert r.status == 201, r.body
    added = json.loads(r.body)
    assert added["address"] == addr(b2) and added["source"] == "admin" and added["weight"] == 2
    names = spread(t)
    assert names["b1"] > 0 and names["b2"] > 0, names  # every worker follows the table

    r = api(t, "PATCH", "/upstreams/api/targets/" + addr(b2), {"drain": True})
    assert r.status == 200 and json.loads(r.body)["health"] == "draining", r.body
    assert set(spread(t)) == {"b1"}

    r = api(t, "PATCH", "/upstreams/api/targets/" + addr(b2), {"drain": False, "weight": 1})
    assert r.status == 200 and json.loads(r.body)["health"] == "up", r.body
    assert spread(t)["b2"] > 0

    r = api(t, "DELETE", "/upstreams/api/targets/" + addr(b1))
    assert r.status == 200 and json.loads(r.body)["deleted"] is True, r.body
    assert set(spread(t)) == {"b2"}
    assert set(targets_by_address(t)) == {addr(b2)}


def test_a_removed_target_finishes_its_requests(procs):
    b1, b2 = procs.backend("b1"), procs.backend("b2")
    t = gateway(procs, [b1, b2], workers=1)
    import threading
    results = []

    def slow():
        results.append(request(t.port, "GET", "/slow?ms=1500", timeout=10))

    # Round robin from a fresh worker: find which backend the slow request lands on.
    th = [threading.Thread(target=slow) for _ in range(2)]
    for x in th:
        x.start()
    assert harness.wait_until(
        lambda: sum(x["in_flight"] for x in targets_by_address(t).values()) == 2, 5)
    assert api(t, "DELETE", "/upstreams/api/targets/" + addr(b1)).status == 200
    leaving = targets_by_address(t).get(addr(b1))
    assert leaving and leaving["health"] == "leaving" and leaving["in_flight"] == 1, leaving
    for x in th:
        x.join(10)
    assert sorted(r.status for r in results) == [200, 200], results
    assert {json.loads(r.body)["backend"] for r in results} == {"b1", "b2"}
    assert set(spread(t, 6)) == {"b2"}
    assert addr(b1) not in targets_by_address(t)


def test_bad_requests_get_clear_answers(procs):
    b1 = procs.backend("b1")
    t = gateway(procs, [b1])
    cases = [
        ("POST", "/upstreams/api/targets", "{not json", 400, "invalid JSON"),
        ("POST", "/upstreams/api/targets", {"weight": 2}, 400, "\"address\" is required"),
        ("POST", "/upstreams/api/targets", {"address": "backend.internal:80"}, 400, "IP address"),
        ("POST", "/upstreams/api/targets", {"address": addr(b1), "colour": "red"}, 400,
         "unknown field \"colour\""),
        ("POST", "/upstreams/api/targets", {"address": "127.0.0.9:80", "weight": 0}, 400,
         "\"weight\""),
        ("POST", "/upstreams/api/targets", {"address": addr(b1)}, 409, "already"),
        ("POST", "/upstreams/nope/targets", {"address": "127.0.0.9:80"}, 404, "nope"),
        ("PATCH", "/upstreams/api/targets/127.0.0.9:81", {"weight": 3}, 404, "no target"),
        ("PATCH", "/upstreams/api/targets/" + addr(b1), {}, 400, "nothing to change"),
        ("DELETE", "/upstreams/api/targets/127.0.0.9:81", None, 404, "no target"),
        ("GET", "/upstreams/api/targets", None, 405, "POST"),
        ("PUT", "/upstreams", None, 405, "GET"),
    ]
    for method, path, body, status, says in cases:
        r = api(t, method, path, body)
        assert r.status == status, (method, path, body, r.status, r.body)
        assert says in json.loads(r.body)["error"], (method, path, r.body)
    assert set(targets_by_address(t)) == {addr(b1)}  # nothing changed


def test_changes_survive_reload_and_restart(procs, tmp_path):
    b1, b2, b3 = procs.backend("b1"), procs.backend("b2"), procs.backend("b3")
    state = str(tmp_path / "targets.state")
    t = gateway(procs, [b1, b2], admin_opts={"state_file": state})
    assert api(t, "POST", "/upstreams/api/targets", {"address": addr(b3), "weight": 3}).status == 201
    assert api(t, "DELETE", "/upstreams/api/targets/" + addr(b1)).status == 200
    assert api(t, "PATCH", "/upstreams/api/targets/" + addr(b2), {"weight": 2}).status == 200
    assert harness.wait_until(lambda: os.path.exists(state) and addr(b3) in open(state).read(), 5)
    saved = json.load(open(state))["upstreams"]["api"]
    assert saved["add"] == [{"address": addr(b3), "weight": 3, "drain": False}], saved
    assert saved["delete"] == [addr(b1)] and saved["patch"] == [
        {"address": addr(b2), "weight": 2}], saved

    def expect_changed_set():
        got = targets_by_address(t)
        assert set(got) == {addr(b2), addr(b3)}, got
        assert got[addr(b2)]["weight"] == 2 and got[addr(b3)]["weight"] == 3, got
        assert got[addr(b3)]["source"] == "admin", got
        assert set(spread(t, 12)) == {"b2", "b3"}

    expect_changed_set()
    gen = json.loads(api(t, "GET", "/status").body)["generation"]
    os.kill(t.pid, signal.SIGHUP)
    assert harness.wait_until(
        lambda: json.loads(api(t, "GET", "/status").body).get("generation") == gen + 1, 10)
    expect_changed_set()

    t.stop()
    t.start()
    expect_changed_set()


def test_admin_token_guards_every_endpoint(procs):
    b1, b2 = procs.backend("b1"), procs.backend("b2")
    t = gateway(procs, [b1], admin_opts={"token": "s3cret-token"})
    for path in ("/status", "/upstreams"):
        r = api(t, "GET", path)
        assert r.status == 401, (path, r.status)
        assert r.header("WWW-Authenticate", "").startswith("Bearer"), r.headers
        assert api(t, "GET", path, token="wrong").status == 401
        assert api(t, "GET", path, token="s3cret-token").status == 200
    r = api(t, "POST", "/upstreams/api/targets", {"address": addr(b2)})
    assert r.status == 401
    assert addr(b2) not in targets_by_address(t, token="s3cret-token")
    r = api(t, "POST", "/upstreams/api/targets", {"address": addr(b2)}, token="s3cret-token")
    assert r.status == 201, r.body
    assert addr(b2) in targets_by_address(t, token="s3cret-token")


def test_passive_health_is_counted_across_workers(procs):
    # max_fails = 2 for the machine: a dead target costs two failed attempts in all, however
    # the two workers share them (counted per worker it would be up to four).
    b1 = procs.backend("b1")
    dead = harness.free_port()
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(workers=2, admin_port=admin),
        upstream_block("api", [b1.port, dead], keepalive=0, connect_timeout="1s",
                       read_timeout="5s", retries=0),
        "[upstream.api.health]\nenabled = false\nmax_fails = 2\nfail_timeout = \"30s\"\n",
        server_block([port], [{"path": "/", "upstream": "api"}]))
    t = procs.torii(text)
    t.port, t.admin = port, admin
    statuses = collections.Counter(request(port, "GET", "/x?i=%d" % i).status for i in range(40))
    assert statuses[502] == 2 and statuses[200] == 38, statuses
    got = targets_by_address(t)["%s:%d" % (harness.HOST, dead)]
    assert got["health"] == "down" and got["down_reason"] == "passive (max_fails)", got
    assert got["last_failure"] and abs(got["last_failure"] / 1000 - time.time()) < 60, got


def test_slow_start_ramps_a_new_target_up(procs):
    # weighted balancer, one worker: b2 joins with weight 9 next to b1's 1. With slow_start
    # it starts near weight 1 (about half the requests) and reaches 9 (90%) after 4 s.
    b1, b2 = procs.backend("b1"), procs.backend("b2")
    t = gateway(procs, [b1], workers=1, ups={"balancer": "weighted", "slow_start": "4s"})
    assert api(t, "POST", "/upstreams/api/targets", {"address": addr(b2), "weight": 9}).status == 201
    early = spread(t, 20)
    assert early["b2"] <= 13, early
    time.sleep(4.2)
    late = spread(t, 20)
    assert late["b2"] >= 17, late
