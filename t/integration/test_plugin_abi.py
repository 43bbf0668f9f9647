"""The plugin ABI across minors (docs/plugins.md, "Versioning policy").

- A plugin built against a frozen copy of the 1.0 header (t/plugins/abi_1_0, its own
  include/torii/plugin.h) loads and works unchanged: settings, variables, headers, shared
  counters, respond(), its per-request context through log and request_done.
- The functions 1.3 added (t/plugins/abi_1_3): conf_dir, conf_array_int/_float/_bool/_type,
  conf_scope, hash64, var_ref/var_get, req_protocol, req_ctx (also from a balancer's pick
  and feedback, with request_done at the end), and query arguments get/set/remove, as the
  upstream and the client see them.
"""

import json
import os
import re
import time

import pytest

import harness
from harness import config, main_block, plugin_block, request, server_block, upstream_block

REPO = os.path.dirname(os.path.dirname(harness.HERE))


def test_frozen_header_is_the_1_0_one():
    with open(os.path.join(REPO, "t/plugins/abi_1_0/include/torii/plugin.h")) as f:
        text = f.read()
    assert "#define TORII_PLUGIN_ABI_MINOR 0" in text
    assert "conf_is_tcp_server" not in text and "log_mask_query_arg" not in text


@pytest.fixture(scope="module")
def gw(module_procs):
    backend = module_procs.backend("b")
    port, admin = harness.free_port(), harness.free_port()
    tp = harness.test_plugin_dir()
    text = config(
        main_block(admin_port=admin),
        plugin_block("abi_1_0", path=os.path.join(tp, "abi_1_0.so")),
        plugin_block("abi_1_3", path=os.path.join(tp, "abi_1_3.so")),
        upstream_block("api", [backend.port]),
        upstream_block("picked", [backend.port], balancer="abi_1_3"),
        server_block([port], [
            {"path": "/old/", "upstream": "api",
             "plugins": {"abi_1_0": {"tag": "one-oh", "deny_header": "X-No"}}},
            {"path": "/new/", "upstream": "picked",
             "plugins": {"abi_1_3": {
                 "file": "allowed.txt", "ints": [1, 2, 39], "floats": [0.5, 2],
                 "flags": [True, False, True], "mixed": ["a", 1, 2.5, True, {"x": 1}, [1]],
                 "hash_input": "torii", "hide": "apikey"}}},
        ]),
    )
    t = module_procs.torii(text, start=False)
    # Beside the config file: "allowed.txt" is relative to its folder (conf_dir).
    with open(os.path.join(os.path.dirname(t.config_path), "allowed.txt"), "w") as f:
        f.write("first line of a relative file\nsecond\n")
    t.start()
    return port, admin, backend, t


def test_a_1_0_plugin_works_unchanged(gw):
    port, admin, _, _ = gw
    r = request(port, "GET", "/old/x")
    assert r.status == 200 and r.header("X-Abi") == "one-oh", r
    doc = r.json()
    assert ["X-Abi10-Client", "127.0.0.1"] in doc["headers"], doc["headers"]
    first = int(r.header("X-Abi10-Number"))
    r = request(port, "GET", "/old/y")
    assert int(r.header("X-Abi10-Number")) == first + 1
    denied = request(port, "GET", "/old/x", headers={"X-No": "1"})
    assert denied.status == 403 and denied.header("X-Denied-By") == "abi_1_0"
    assert denied.body == b"denied by a 1.0 plugin\n"
    counts = request(admin, "GET", "/abi10").json()
    # every request that got a context was logged and handed to request_done
    assert counts["requests"] >= 2 and counts["logged"] == counts["done"] == counts["requests"]


def test_config_accessors_of_1_3(gw, tmp_path):
    port, _, _, t = gw
    r = request(port, "GET", "/new/x")
    assert r.status == 200, r
    assert r.header("X-File") == "first line of a relative file"  # conf_dir
    assert r.header("X-Arrays") == "42 2.50 2"
    # string, int, float, bool, table, array (TORII_CONF_*)
    assert r.header("X-Types") == "1,2,3,4,5,6"
    assert r.header("X-Scope") == "server 127.0.0.1:%d * location /new/" % port


def reference_hash64(data, seed):
    """An independent copy of core/base/hash64.cc: the value must never change."""
    M = (1 << 64) - 1
    k = 0x9e3779b97f4a7c15

    def mix(h):
        h ^= h >> 33
        h = (h * 0xff51afd7ed558ccd) & M
        h ^= h >> 33
        h = (h * 0xc4ceb9fe1a85ec53) & M
        h ^= h >> 33
        return h
    h = (seed ^ (len(data) * k)) & M
    i = 0
    while len(data) - i >= 8:
        w = int.from_bytes(data[i:i + 8], "little")
        h = ((h ^ mix((w * k) & M)) * k) & M
        i += 8
    tail = int.from_bytes(data[i:], "little")
    h ^= mix((tail * k + (len(data) - i)) & M)
    return mix(h)


def test_hash64_is_the_documented_function(gw):
    port, _, _, _ = gw
    r = request(port, "GET", "/new/x")
    assert r.header("X-Hash") == "%016x" % reference_hash64(b"torii", 7)


def test_var_ref_protocol_and_req_ctx(gw):
    port, _, _, _ = gw
    r = request(port, "GET", "/new/some/thing?a=1")
    assert r.header("X-Request-Uri") == "/new/some/thing?a=1"
    assert r.header("X-Proto") == "1"  # TORII_PROTO_HTTP1, no TLS
    assert r.header("X-Ctx") == "same"  # host->req_ctx is the hook's *req_ctx
    # HTTP/2 with prior knowledge on the same port, a gRPC content type: HTTP2 | GRPC
    g = harness.curl("--http2-prior-knowledge", "-X", "POST", "--data-binary", "@/dev/null",
                     "-H", "Content-Type: application/grpc", "-H", "TE: trailers",
                     "http://127.0.0.1:%d/new/grpc" % port)
    assert g.headers.get("x-proto") == str(0x02 | 0x20), g
    h2 = harness.curl("--http2-prior-knowledge", "http://127.0.0.1:%d/new/x" % port)
    assert h2.headers.get("x-proto") == str(0x02), h2


def test_numbers_and_shared_slots_of_1_4(gw):
    port, _, _, _ = gw
    # var_int: $status and $request_length as numbers (TORII_OK = 0), $request_uri is text
    # (TORII_EINVAL = -1)
    r = request(port, "POST", "/new/n", body=b"12345")
    assert r.status == 200, r
    assert r.header("X-Numbers") == "0:200 0:5 -1", r.header("X-Numbers")
    # shared_slot: the same bytes for every worker and request, bumped by atomic adds; the
    # key asked for with another length gives no slot
    first = int(r.header("X-Slot"))
    counts = [int(request(port, "GET", "/new/n").header("X-Slot")) for _ in range(6)]
    assert counts == list(range(first + 1, first + 7)), (first, counts)
    assert r.header("X-Slot-Other") == "null"


def test_query_arguments_get_set_remove(gw):
    port, _, _, _ = gw
    r = request(port, "GET", "/new/q?x=1&apikey=s3cret&api%6Bey=again&y=2")
    doc = r.json()
    assert ["X-Hidden-Value", "s3cret"] in doc["headers"]
    # both spellings of the name removed, the others kept in order, via appended
    assert doc["path"] == "/new/q?x=1&y=2&via=torii", doc["path"]
    # same length as the original query: the rewritten one must still be sent
    r = request(port, "GET", "/new/q?apikey=abcdefghijkl")
    assert r.json()["path"] == "/new/q?via=torii"
    r = request(port, "GET", "/new/q?via=other&via=more")
    assert r.json()["path"] == "/new/q?via=torii"


def test_balancer_keeps_its_request_context(gw):
    port, admin, _, _ = gw
    before = request(admin, "GET", "/abi13").json()
    for _ in range(5):
        assert request(port, "GET", "/new/x").status == 200
    after = harness.wait_until(
        lambda: (lambda d: d if d["done"] - before["done"] >= 5 else None)(
            request(admin, "GET", "/abi13").json()), 5)
    assert after, request(admin, "GET", "/abi13").json()
    assert after["picked"] - before["picked"] == 5
    assert after["seen"] - before["seen"] == 5  # feedback found pick's note in req_ctx
    assert after["done"] - before["done"] == 5  # and request_done freed it


def test_timers_from_create_run_in_each_worker(procs):
    """timer_add in create() (the master has no loop): each worker arms its own copy; a
    timer cancelled in create() never fires; a reload's new workers run the new set's."""
    import signal
    port, admin = harness.free_port(), harness.free_port()
    tp = harness.test_plugin_dir()
    text = config(
        main_block(admin_port=admin, workers=2),
        plugin_block("abi_1_3", path=os.path.join(tp, "abi_1_3.so")),
        server_block([port], [{"path": "/", "return": {"status": 200},
                               "plugins": {"abi_1_3": {}}}]),
    )
    t = procs.torii(text)
    counts = lambda: request(admin, "GET", "/abi13").json()
    assert harness.wait_until(lambda: counts()["timer"] == 2, 5), counts()
    os.kill(t.pid, signal.SIGHUP)
    assert harness.wait_until(lambda: counts()["timer"] == 4, 10), counts()
    time.sleep(0.2)
    assert counts()["timer"] == 4 and counts()["cancelled"] == 0, counts()


def test_every_config_error_of_a_table_is_reported(tmp_path):
    tp = harness.test_plugin_dir()
    conf = tmp_path / "bad.toml"
    conf.write_text(config(
        main_block(),
        plugin_block("abi_1_3", path=os.path.join(tp, "abi_1_3.so")),
        server_block([harness.free_port()], [
            {"path": "/", "return": {"status": 200},
             "plugins": {"abi_1_3": {"ints": [1, "two", 3.5], "flags": ["yes"],
                                     "file": "missing.txt"}}}]),
    ))
    res = harness.run_torii(["-t", "-c", str(conf)])
    assert res.returncode != 0
    errors = [l for l in res.stderr.splitlines() if 'plugin "abi_1_3"' in l]
    text = "\n".join(errors)
    assert "ints[1]: expected an integer" in text, res.stderr
    assert "flags[0]: expected true or false" in text, res.stderr
    assert "cannot open" in text, res.stderr
    assert all(re.match(r"^.*bad\.toml:\d+:\d+: ", l) for l in errors), errors
