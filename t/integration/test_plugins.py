"""Plugins (SPEC sections 2, 3 and 5): loading and refusing .so files, config errors with
their place, run order, per-location switches and inheritance, shared counters,
pause/resume from a timer, header_rewrite both ways, and the one exported symbol.

Uses the test-only plugins of t/plugins (built into harness.test_plugin_dir()):
  tag          X-Tag: <value> on the upstream request and on the response, and a shared
               counter X-Tag-Count-<value>; `value` is required
  pause_timer  pauses in access for `delay` (required duration), then sets X-Paused: <ms>
               upstream, or with `deny = true` answers 403 "denied after a pause"
  abi_mismatch claims ABI 99.3
  no_entry     exports no torii_plugin_entry
"""

import os
import re
import socket
import struct
import subprocess
import threading
import time
import types

import pytest

import harness
from harness import (RawConn, config, main_block, plugin_block, request, run_torii,
                     server_block, upstream_block)

TEST_PLUGINS = harness.test_plugin_dir()
TAG_SO = os.path.join(TEST_PLUGINS, "tag.so")
PAUSE_SO = os.path.join(TEST_PLUGINS, "pause_timer.so")


def abi_version():
    """"MAJOR.MINOR" of include/torii/plugin.h, which torii reports."""
    header = os.path.join(harness.HERE, "..", "..", "include", "torii", "plugin.h")
    text = open(header).read()
    return "%s.%s" % tuple(re.search(r"#define TORII_PLUGIN_ABI_%s (\d+)" % k, text).group(1)
                           for k in ("MAJOR", "MINOR"))


def hdr(doc, name):
    """Values of a request header as the backend received it, in order."""
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def echo(port, path, **kw):
    r = request(port, "GET", path, **kw)
    assert r.status == 200, (path, r.status, r.body[:300])
    return r, r.json()


# -- config checks (`torii -t`) -----------------------------------------------------------

def line_of(text, needle):
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) == 1, "%r found on lines %r of the config" % (needle, hits)
    return hits[0]


def write(tmp_path, text, name="torii.toml"):
    p = os.path.join(str(tmp_path), name)
    with open(p, "w") as f:
        f.write(text)
    return p


def check(tmp_path, text):
    """`torii -t -c FILE` on text: (path, CompletedProcess)."""
    path = write(tmp_path, text)
    return path, run_torii(["-t", "-c", path])


def refused(tmp_path, text, needle):
    """`torii -t` exits 1, prints no ok, and stderr names FILE:LINE:COL: of `needle`'s line.
    Returns stderr."""
    path, cp = check(tmp_path, text)
    assert cp.returncode == 1, "exit %d, stdout=%r stderr=%r" % (cp.returncode, cp.stdout,
                                                                 cp.stderr)
    assert not re.search(r"\bok\b", cp.stdout), cp.stdout
    line = line_of(text, needle)
    assert re.search(re.escape(path) + r":%d:\d+: " % line, cp.stderr), \
        "expected %s:%d:COL: (the line of %r) in %r" % (path, line, needle, cp.stderr)
    return cp.stderr


def checked_config(port, decls, server_plugins=None, loc_plugins=None):
    """A small config with known lines: [[plugin]] entries, then one server with a `return`
    location. `decls` are (name, path) pairs."""
    return config(
        main_block(),
        *[plugin_block(n, path=p) for n, p in decls],
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "x\n"},
                               "plugins": loc_plugins or {}}],
                     plugins=server_plugins or {}),
    )


def test_abi_mismatch_refused(tmp_path):
    so = os.path.join(TEST_PLUGINS, "abi_mismatch.so")
    text = checked_config(harness.free_port(), [("future", so)])
    err = refused(tmp_path, text, "[[plugin]]")
    assert so in err, err
    assert "built for plugin ABI 99.3, this torii speaks %s" % abi_version() in err, err
    assert '"future"' in err, err


def test_missing_entry_point_refused(tmp_path):
    so = os.path.join(TEST_PLUGINS, "no_entry.so")
    text = checked_config(harness.free_port(), [("noentry", so)])
    err = refused(tmp_path, text, "[[plugin]]")
    assert "torii_plugin_entry" in err and so in err, err


def test_missing_file_refused(tmp_path):
    so = os.path.join(str(tmp_path), "does-not-exist.so")
    text = checked_config(harness.free_port(), [("ghost", so)])
    err = refused(tmp_path, text, "[[plugin]]")
    assert so in err, err


def test_missing_file_in_plugin_dir_refused(tmp_path):
    # by name only: <plugin_dir>/nosuch.so
    text = checked_config(harness.free_port(), [("nosuch", None)])
    err = refused(tmp_path, text, "[[plugin]]")
    assert os.path.join(harness.plugin_dir(), "nosuch.so") in err, err


def test_good_plugin_config_is_ok(tmp_path):
    text = checked_config(harness.free_port(), [("tag", TAG_SO)],
                          server_plugins={"tag": {"value": "srv"}})
    _, cp = check(tmp_path, text)
    assert cp.returncode == 0, cp.stderr
    assert re.search(r"\bok\b", cp.stdout), cp.stdout


def test_plugin_unknown_key_names_its_line(tmp_path):
    text = checked_config(harness.free_port(), [("tag", TAG_SO)],
                          loc_plugins={"tag": {"value": "v", "bogus": 1}})
    err = refused(tmp_path, text, "bogus = 1")
    assert 'plugin "tag": unknown key "bogus"' in err, err


def test_plugin_missing_required_key_names_the_table(tmp_path):
    text = checked_config(harness.free_port(), [("tag", TAG_SO)],
                          server_plugins={"tag": {}})
    err = refused(tmp_path, text, "[server.plugins.tag]")
    assert 'plugin "tag"' in err and "value is required" in err, err


def test_plugin_wrong_type_names_its_line(tmp_path):
    text = checked_config(harness.free_port(), [("pause_timer", PAUSE_SO)],
                          loc_plugins={"pause_timer": {"deny": False, "delay": 5}})
    err = refused(tmp_path, text, "delay = 5")
    assert 'plugin "pause_timer"' in err and "delay" in err, err


def test_plugin_not_listed_is_an_error(tmp_path):
    # in a location, and server-wide: the error names the plugin and the place it is used
    text = checked_config(harness.free_port(), [("tag", TAG_SO)],
                          loc_plugins={"pause_timer": {"delay": "10ms"}})
    err = refused(tmp_path, text, "[server.location.plugins.pause_timer]")
    assert '"pause_timer"' in err and "not listed under [[plugin]]" in err, err
    text = checked_config(harness.free_port(), [("tag", TAG_SO)],
                          server_plugins={"pause_timer": {"delay": "10ms"}})
    err = refused(tmp_path, text, "[server.plugins.pause_timer]")
    assert '"pause_timer"' in err and "not listed under [[plugin]]" in err, err


def test_bare_enabled_without_server_instance_needs_settings(tmp_path):
    # `enabled = true` alone switches the server's instance on; with no server instance it
    # is a new instance with an empty table, which tag refuses (no value)
    text = checked_config(harness.free_port(), [("tag", TAG_SO)],
                          loc_plugins={"tag": {"enabled": True}})
    err = refused(tmp_path, text, "[server.location.plugins.tag]")
    assert 'plugin "tag"' in err and "value is required" in err, err


def test_bad_regex_in_header_rewrite_names_its_line(tmp_path):
    text = checked_config(harness.free_port(), [("header_rewrite", None)],
                          loc_plugins={"header_rewrite": {
                              "path": {"regex": "^/old/(.*$", "replace": "/new/$1"}}})
    err = refused(tmp_path, text, "regex =")
    assert 'plugin "header_rewrite"' in err, err


# -- a running gateway with the test plugins ----------------------------------------------

@pytest.fixture(scope="module")
def gw(module_procs):
    p = module_procs
    b = p.backend("p1")
    port, port2, port3 = harness.free_port(), harness.free_port(), harness.free_port()
    ups = dict(keepalive=16, connect_timeout="1s", read_timeout="5s", retries=1)
    text = config(
        main_block(),
        # run order = list order: "second" before "first", both tag.so
        plugin_block("second", path=TAG_SO),
        plugin_block("first", path=TAG_SO),
        plugin_block("tag", path=TAG_SO),
        plugin_block("pause_timer", path=PAUSE_SO),
        plugin_block("header_rewrite"),
        upstream_block("api", [b.port], **ups),
        # port: order of two instances of one .so
        server_block([port], [
            {"path": "/", "upstream": "api",
             "plugins": {"first": {"value": "f"}, "second": {"value": "s"}}},
        ]),
        # port2: a server-wide tag, and what locations make of it
        server_block([port2], [
            {"path": "/a/", "upstream": "api"},                                  # inherits
            {"path": "/b/", "upstream": "api", "plugins": {"tag": {"value": "loc"}}},
            {"path": "/c/", "upstream": "api", "plugins": {"tag": {"enabled": False}}},
            {"path": "/d/", "upstream": "api", "plugins": {"tag": {"enabled": True}}},
            {"path": "/count/", "upstream": "api", "plugins": {"tag": {"value": "cnt"}}},
            {"path": "/ret", "return": {"status": 200, "body": "ret\n"}},
            {"path": "/pause/", "upstream": "api",
             "plugins": {"pause_timer": {"delay": "300ms"}}},
            {"path": "/deny/", "upstream": "api",
             "plugins": {"pause_timer": {"delay": "300ms", "deny": True}}},
        ], plugins={"tag": {"value": "srv"}}),
        # port3: header_rewrite
        server_block([port3], [
            {"path": "/", "upstream": "api", "plugins": {"header_rewrite": {
                "request_set": {"X-Client": "$remote_addr", "X-Copy": "[$http_x_in]",
                                "X-Source": "torii"},
                "request_add": {"X-Trace": "added"},
                "request_remove": ["X-Internal"],
                "response_set": {"Cache-Control": "no-store"},
                "response_add": {"X-Served-By": "$upstream_addr"},
                "response_remove": ["X-Backend"],
            }}},
            {"path": "/old/", "upstream": "api", "plugins": {"header_rewrite": {
                "path": {"regex": "^/old/(.*)$", "replace": "/new/$1"}}}},
        ]),
    )
    t = p.torii(text)
    return types.SimpleNamespace(port=port, port2=port2, port3=port3, b=b, torii=t)


def test_run_order_is_list_order(gw):
    r, d = echo(gw.port, "/order")
    # upstream phase: each instance appended its value, "second" first
    assert hdr(d, "X-Tag") == ["s", "f"], d["headers"]
    # response phase: same order
    assert r.headers.get_all("X-Tag") == ["s", "f"], r.headers


def test_server_plugin_inherited(gw):
    r, d = echo(gw.port2, "/a/x")
    assert r.headers.get_all("X-Tag") == ["srv"]
    assert hdr(d, "X-Tag") == ["srv"]


def test_location_table_replaces_server_table(gw):
    r, d = echo(gw.port2, "/b/x")
    assert r.headers.get_all("X-Tag") == ["loc"], r.headers
    assert hdr(d, "X-Tag") == ["loc"]


def test_location_enabled_false_switches_off(gw):
    r, d = echo(gw.port2, "/c/x")
    assert r.headers.get_all("X-Tag") == [], r.headers
    assert hdr(d, "X-Tag") == []
    assert not [n for n in r.headers.names() if n.startswith("x-tag-count-")], r.headers


def test_location_enabled_true_uses_server_instance(gw):
    r, d = echo(gw.port2, "/d/x")
    assert r.headers.get_all("X-Tag") == ["srv"], r.headers
    assert hdr(d, "X-Tag") == ["srv"]
    assert r.header("X-Tag-Count-srv") is not None


def test_return_location_runs_response_phase(gw):
    r = request(gw.port2, "GET", "/ret")
    assert (r.status, r.body) == (200, b"ret\n")
    assert r.headers.get_all("X-Tag") == ["srv"], r.headers


def test_shared_counter_increments(gw):
    counts = []
    for i in range(5):
        r, _ = echo(gw.port2, "/count/%d" % i)
        counts.append(int(r.header("X-Tag-Count-cnt")))
    assert counts == list(range(counts[0], counts[0] + 5)), counts
    assert counts[0] >= 1


def test_server_and_location_instances_count_apart(gw):
    # /a/ (server instance "srv") and /d/ (the same instance switched back on) share a
    # counter; they advance it by one each
    r1, _ = echo(gw.port2, "/a/1")
    r2, _ = echo(gw.port2, "/d/2")
    r3, _ = echo(gw.port2, "/a/3")
    c = [int(r.header("X-Tag-Count-srv")) for r in (r1, r2, r3)]
    assert c == [c[0], c[0] + 1, c[0] + 2], c


def test_shared_counter_is_shared_by_workers(procs):
    # two workers, requests on fresh connections from 4 threads: the counter (shared memory)
    # hands out every number once, whichever worker serves
    port = harness.free_port()
    t = procs.torii(config(
        main_block(workers=2),
        plugin_block("tag", path=TAG_SO),
        server_block([port], [{"path": "/", "return": {"status": 200, "body": "x\n"}}],
                     plugins={"tag": {"value": "w2"}}),
    ))
    if len(t.pids()) < 3:
        pytest.skip("torii does not run separate worker processes yet (pids %r)" % t.pids())
    seen, errors = [], []

    def worker():
        for _ in range(50):
            try:
                r = request(port, "GET", "/")
                seen.append(int(r.header("X-Tag-Count-w2")))
            except Exception as e:  # reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert not errors, errors[:5]
    assert sorted(seen) == list(range(1, 201)), sorted(seen)[:20]


# -- pause and resume ---------------------------------------------------------------------

# The 300 ms timer counts from the event loop's cached clock, which can lag the real one by
# a few milliseconds: the client may see the answer a hair under 300 ms after sending.
PAUSED = 0.28


def test_pause_then_resume(gw):
    start = time.monotonic()
    r, d = echo(gw.port2, "/pause/x")
    elapsed = time.monotonic() - start
    assert elapsed >= PAUSED, elapsed
    assert elapsed < 2.0, elapsed
    assert hdr(d, "X-Paused") == ["300"], d["headers"]


def test_resume_continues_from_the_loop_not_inside_the_call(gw):
    # The plugin adds X-Resumed-Later only if, right after its resume() call, the request
    # is still paused there (it would have been forwarded already had resume re-entered).
    r, d = echo(gw.port2, "/pause/y")
    assert hdr(d, "X-Resumed-Later") == ["1"], d["headers"]


def test_pause_does_not_block_the_worker(gw):
    # one worker: had the pause blocked it, 5 requests would take 5 x 0.3 s
    results, errors = [], []

    def one(i):
        try:
            r = request(gw.port2, "GET", "/pause/c%d" % i, timeout=10)
            results.append((r.status, hdr(r.json(), "X-Paused")))
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(5)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    elapsed = time.monotonic() - start
    assert not errors, errors
    assert results == [(200, ["300"])] * 5, results
    assert PAUSED <= elapsed < 0.9, "5 concurrent paused requests took %.2f s" % elapsed


def test_pause_then_respond(gw):
    start = time.monotonic()
    r = request(gw.port2, "GET", "/deny/x")
    elapsed = time.monotonic() - start
    assert r.status == 403, (r.status, r.body)
    assert r.body == b"denied after a pause\n"
    assert elapsed >= PAUSED, elapsed


def test_client_leaves_while_paused(gw):
    pids = gw.torii.pids()
    for i in range(3):
        c = RawConn(gw.port2)
        c.send(b"GET /pause/gone%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
        time.sleep(0.05)
        c.close()
    # a reset instead of a FIN, too
    s = socket.create_connection((harness.HOST, gw.port2), timeout=5)
    s.sendall(b"GET /pause/rst HTTP/1.1\r\nHost: h\r\n\r\n")
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    time.sleep(0.5)  # the timers fire with their requests gone
    assert gw.torii.alive()
    _, d = echo(gw.port2, "/pause/after")
    assert hdr(d, "X-Paused") == ["300"]
    _, d = echo(gw.port2, "/a/after")
    assert hdr(d, "X-Tag") == ["srv"]
    assert gw.torii.pids() == pids, "a process died or was replaced: %r -> %r" % (
        pids, gw.torii.pids())


# -- header_rewrite -----------------------------------------------------------------------

def test_header_rewrite_request_headers(gw):
    _, d = echo(gw.port3, "/rq", headers={"X-In": "hello", "X-Internal": "secret",
                                          "X-Trace": "client", "X-Source": "client"})
    assert hdr(d, "X-Client") == ["127.0.0.1"]
    assert hdr(d, "X-Copy") == ["[hello]"]
    assert hdr(d, "X-Source") == ["torii"], "request_set replaces the client's value"
    assert hdr(d, "X-Trace") == ["client", "added"], "request_add appends"
    assert hdr(d, "X-Internal") == []
    assert d["path"] == "/rq"


def test_header_rewrite_missing_variable(gw):
    # $http_x_in absent: the template expands it to nothing (or the header is skipped)
    _, d = echo(gw.port3, "/rq2")
    assert hdr(d, "X-Copy") in ([], ["[]"]), d["headers"]
    assert hdr(d, "X-Source") == ["torii"]


def test_header_rewrite_response_headers(gw):
    r = request(gw.port3, "GET", "/resp")
    assert r.status == 200
    assert r.header("X-Backend") is None, "response_remove"
    assert r.header("Server") is not None  # only the listed header goes
    assert r.headers.get_all("Cache-Control") == ["no-store"]
    assert r.headers.get_all("X-Served-By") == [gw.b.address]


def test_header_rewrite_path(gw):
    _, d = echo(gw.port3, "/old/a/b?x=1&y=%20")
    assert d["path"] == "/new/a/b?x=1&y=%20"
    _, d = echo(gw.port3, "/old/")
    assert d["path"] == "/new/"
    # no rewrite table in "/": path untouched
    _, d = echo(gw.port3, "/older/z?q")
    assert d["path"] == "/older/z?q"


def rewrite_torii(procs, rewrite):
    """torii with one header_rewrite location in front of a new backend: (port, backend)."""
    b = procs.backend("hr")
    port = harness.free_port()
    procs.torii(config(
        main_block(),
        plugin_block("header_rewrite"),
        upstream_block("api", [b.port], keepalive=4, connect_timeout="1s", read_timeout="5s"),
        server_block([port], [{"path": "/", "upstream": "api",
                               "plugins": {"header_rewrite": rewrite}}]),
    ))
    return port, b


def test_header_rewrite_empty_value(procs):
    # a template that expands to nothing: the request still goes through and the header is
    # sent empty or left out (under the sanitizers this also checks that writing an empty
    # header value is clean)
    port, _ = rewrite_torii(procs, {"request_set": {"X-Empty": "$http_x_absent"},
                                    "response_set": {"X-Empty-Resp": "$http_x_absent"}})
    r, d = echo(port, "/empty")
    assert hdr(d, "X-Empty") in ([], [""]), d["headers"]
    assert r.headers.get_all("X-Empty-Resp") in ([], [""]), r.headers
    _, d = echo(port, "/full", headers={"X-Absent": "here"})
    assert hdr(d, "X-Empty") == ["here"]


def test_upstream_phase_runs_after_balance(procs):
    # SPEC section 3: balance picks the target, then the upstream phase runs "just before
    # the request head is sent upstream", so $upstream_addr is known there
    port, b = rewrite_torii(procs, {"request_set": {"X-Picked": "addr=$upstream_addr"}})
    _, d = echo(port, "/after-balance")
    assert hdr(d, "X-Picked") == ["addr=" + b.address], d["headers"]


# -- the ABI surface ----------------------------------------------------------------------

def test_bundled_plugins_export_one_symbol():
    sos = sorted(f for f in os.listdir(harness.plugin_dir()) if f.endswith(".so"))
    assert {"random.so", "round_robin.so", "weighted.so", "chash.so", "least_conn.so",
            "header_rewrite.so"} <= set(sos), sos
    for so in sos:
        cp = subprocess.run(["nm", "-D", "--defined-only", os.path.join(harness.plugin_dir(), so)],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode == 0, cp.stderr
        names = [line.split()[-1] for line in cp.stdout.splitlines() if line.strip()]
        assert names == ["torii_plugin_entry"], "%s exports %r" % (so, names)
