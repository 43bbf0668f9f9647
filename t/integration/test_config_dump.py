"""`torii -T -c FILE`: checks the config as -t does, then prints the effective configuration:
defaults resolved, and each server's and location's plugin chain in run order per phase,
inherited and switched-off plugins marked. The dump is TOML that loads as the same config."""

import json
import os
import re

import harness
from harness import config, main_block, plugin_block, run_torii, server_block, upstream_block

TAG = os.path.join(harness.test_plugin_dir(), "tag.so")
NOOP = os.path.join(harness.test_plugin_dir(), "noop.so")


def write(tmp_path, name, text):
    p = os.path.join(str(tmp_path), name)
    with open(p, "w") as f:
        f.write(text)
    return p


def dump(path):
    cp = run_torii(["-T", "-c", path])
    assert cp.returncode == 0, "exit %d, stderr=%r" % (cp.returncode, cp.stderr)
    return cp.stdout


def section(text, header, nth=0):
    """The lines of the nth section that starts with `header`, up to the next table header."""
    starts = [i for i, l in enumerate(text.splitlines()) if l.startswith(header)]
    assert len(starts) > nth, "%s (#%d) not in the dump:\n%s" % (header, nth, text)
    lines = text.splitlines()[starts[nth]:]
    out = [lines[0]]
    for l in lines[1:]:
        if l.startswith("[") or re.match(r"^# \[server\.location\.plugins\.", l):
            break
        out.append(l)
    return out


def phase(lines, name):
    """The plugins a `#   <phase>  a, b (inherited from [[server]])` line lists, in order."""
    for l in lines:
        m = re.match(r"^#   %s\s+(.*)$" % name, l)
        if m:
            return m.group(1)
    raise AssertionError("no %s line in %s" % (name, lines))


def chain_config(port, bport, tag_order=("tag_a", "tag_b")):
    # Two instances of the tag plugin under two names: their order on each phase line must
    # follow [[plugin]], whatever order the tables are written in.
    plugins = [plugin_block("noop", path=NOOP)]
    plugins += [plugin_block(name, path=TAG) for name in tag_order]
    plugins.append(plugin_block("stats"))
    return config(
        main_block(),
        *plugins,
        upstream_block("api", [bport, (bport + 1, 3)], balancer="weighted"),
        server_block([port], [
            {"path": "/api/", "upstream": "api",
             "plugins": {"tag_b": {"value": "b"}, "stats": {"enabled": False}}},
            {"path": "/both/", "upstream": "api",
             "plugins": {"tag_b": {"value": "b2"}, "tag_a": {"value": "a2"}}},
            {"path": "/off/", "upstream": "api", "plugins": {"tag_a": {"enabled": False}}},
            {"path": "/own/", "upstream": "api", "plugins": {"noop": {}}},
            {"path": "/", "return": {"status": 200, "body": "hi\n"}},
        ], plugins={"tag_a": {"value": "a"}, "stats": {}}))


def test_dump_marks_inheritance_and_switched_off_plugins(tmp_path):
    port, bport = harness.free_port(), harness.free_port()
    text = dump(write(tmp_path, "c.toml", chain_config(port, bport)))
    assert text.startswith("# torii -T: ")

    api = section(text, "[[server.location]]", 0)
    assert 'path = "/api/"' in api
    assert phase(api, "upstream") == "tag_a (inherited from [[server]]), tag_b"
    assert phase(api, "response") == "tag_a (inherited from [[server]]), tag_b"
    assert phase(api, "log") == "-"  # stats is off here
    assert phase(api, "balance") == 'weighted (upstream "api")'
    assert re.search(r'^# \[server\.location\.plugins\.tag_a\]\s+\(inherited from \[\[server\]\]\)$',
                     text, re.M)
    stats_off = section(text, "[server.location.plugins.stats]", 0)
    assert "off here (enabled = false)" in stats_off[0] and "enabled = false" in stats_off
    own_b = section(text, "[server.location.plugins.tag_b]", 0)
    assert "set here" in own_b[0] and 'value = "b"' in own_b

    off = section(text, "[[server.location]]", 2)
    assert 'path = "/off/"' in off
    assert phase(off, "upstream") == "-"
    assert phase(off, "log") == "stats (inherited from [[server]])"
    off_a = [l for l in text.splitlines() if l.startswith("[server.location.plugins.tag_a]")]
    assert any("off here (enabled = false)" in l for l in off_a), off_a

    ret = section(text, "[[server.location]]", 4)
    assert phase(ret, "balance").startswith("- (return")
    assert phase(ret, "response") == "tag_a (inherited from [[server]])"

    # The server's own chain and the pre_route phase, which runs before any location.
    server = section(text, "[[server]]", 0)
    assert phase(server, "pre_route") == "-"
    assert phase(server, "log") == "stats"
    own = section(text, "[[server.location]]", 3)
    assert phase(own, "access") == "noop, stats (inherited from [[server]])"
    assert any("noop's pre_route hook does not run here" in l for l in own), own


def test_run_order_follows_the_plugin_list(tmp_path):
    port, bport = harness.free_port(), harness.free_port()
    ab = dump(write(tmp_path, "ab.toml", chain_config(port, bport, ("tag_a", "tag_b"))))
    ba = dump(write(tmp_path, "ba.toml", chain_config(port, bport, ("tag_b", "tag_a"))))
    both_ab = section(ab, "[[server.location]]", 1)
    both_ba = section(ba, "[[server.location]]", 1)
    assert 'path = "/both/"' in both_ab
    assert phase(both_ab, "upstream") == "tag_a, tag_b"
    assert phase(both_ba, "upstream") == "tag_b, tag_a"


def test_printed_order_is_the_order_plugins_run(procs):
    # The tag plugin adds X-Tag in the upstream phase: the backend sees the tags in run order,
    # which must be the order -T prints.
    b = procs.backend("b")
    port = harness.free_port()
    for order in (("tag_a", "tag_b"), ("tag_b", "tag_a")):
        t = procs.torii(chain_config(port, b.port, order).replace(
            "[upstream.api]\ntargets = [{ address = \"127.0.0.1:%d\" }, "
            "{ address = \"127.0.0.1:%d\", weight = 3 }]" % (b.port, b.port + 1),
            "[upstream.api]\ntargets = [{ address = \"127.0.0.1:%d\" }]" % b.port))
        text = dump(t.config_path)
        printed = phase(section(text, "[[server.location]]", 1), "upstream").split(", ")
        r = harness.request(port, "GET", "/both/echo")
        assert r.status == 200, r
        tags = [v for k, v in json.loads(r.body)["headers"] if k.lower() == "x-tag"]
        values = {"tag_a": "a2", "tag_b": "b2"}
        assert tags == [values[name] for name in printed], (tags, printed)
        t.stop()


def test_defaults_are_resolved(tmp_path):
    port, bport = harness.free_port(), harness.free_port()
    text = dump(write(tmp_path, "d.toml", config(
        main_block(), upstream_block("api", [bport]),
        server_block([port], [{"path": "/", "upstream": "api"}]))))
    up = section(text, "[upstream.api]", 0)
    for line in ('balancer = "round_robin"', 'protocol = "http1"', 'connect_timeout = "2s"',
                 'read_timeout = "1m"', "retries = 1", "tls = { enabled = false }"):
        assert any(l.startswith(line) for l in up), (line, up)
    assert any(l.startswith("keepalive = 64") for l in up), up
    assert any(re.match(r'^\s+\{ address = "127\.0\.0\.1:%d", weight = 1 \},\s+# id [0-9a-f]{16}$'
                        % bport, l) for l in up), up
    health = section(text, "[upstream.api.health]", 0)
    assert any(l.startswith("enabled = false") for l in health)
    assert any(l.startswith("max_fails = 1") for l in health)
    assert any(l.startswith('fail_timeout = "10s"') for l in health)
    server = section(text, "[[server]]", 0)
    for line in ('client_max_body_size = "1m"', 'keepalive_timeout = "75s"',
                 "http2_max_concurrent_streams = 128", 'server_name = ["*"]',
                 '# tunnel_idle_timeout = "1h"'):
        assert any(l.startswith(line) for l in server), (line, server)
    main = section(text, "[main]", 0)
    assert any(l.startswith('access_log_format = "$remote_addr - - [$time_local]') for l in main)
    assert any(l.startswith('shutdown_timeout = "30s"') for l in main)


def test_the_dump_loads_as_the_same_configuration(tmp_path):
    port, bport = harness.free_port(), harness.free_port()
    first = dump(write(tmp_path, "one.toml", chain_config(port, bport)))
    again_path = write(tmp_path, "two.toml", first)
    cp = run_torii(["-t", "-c", again_path])
    assert cp.returncode == 0 and cp.stdout.strip() == "ok", (cp.stdout, cp.stderr)
    second = dump(again_path)
    drop_first = lambda t: t.split("\n", 1)[1]
    assert drop_first(second) == drop_first(first)


def test_bad_config_fails_as_with_t(tmp_path):
    port = harness.free_port()
    text = config(main_block(), upstream_block("api", [harness.free_port()], balancer="rr2"),
                  server_block([port], [{"path": "/", "upstream": "api"}]))
    path = write(tmp_path, "bad.toml", text)
    t = run_torii(["-t", "-c", path])
    d = run_torii(["-T", "-c", path])
    assert t.returncode == d.returncode == 1
    assert d.stderr == t.stderr and 'unknown balancer "rr2"' in d.stderr
    assert d.stdout == ""


def test_help_lists_T():
    cp = run_torii(["-h"])
    assert cp.returncode == 0
    assert re.search(r"^\s+-T\s", cp.stdout, re.M), cp.stdout
