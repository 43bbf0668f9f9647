"""The command line (SPEC section 1) and config errors that name the place (section 2, 7)."""

import os
import re
import time

import harness
from harness import config, main_block, run_torii, server_block, upstream_block


def good_config(port, admin_port, bport):
    return config(
        main_block(admin_port=admin_port),
        upstream_block("api", [bport, bport + 1], keepalive=16, connect_timeout="1s",
                       read_timeout="2s", retries=1),
        server_block([port], [
            {"path": "/api/", "upstream": "api", "strip_prefix": True},
            {"path": "/exact", "match": "exact", "upstream": "api"},
            {"path": "^/img/.*\\.png$", "match": "regex", "upstream": "api"},
            {"path": "/", "return": {"status": 200, "body": "torii is running\n",
                                     "headers": {"X-A": "b"}}},
        ], client_max_body_size="1m", client_max_header_size="8k", client_header_timeout="1s",
            client_body_timeout="2s", send_timeout="2s", keepalive_timeout="5s"))


# A config whose line numbers the tests know: BAD_LINE marks the line an error must name.
def numbered_config(port, upstream_extra="", location_upstream="api", syntax=""):
    lines = [
        "[main]",
        "workers = 1",
        'error_log = "stderr"',
        'access_log = "off"',
        'plugin_dir = "%s"' % harness.plugin_dir(),
        "",
        "[upstream.api]",
        'targets = [ { address = "127.0.0.1:%d" } ]' % (port + 1),
        "keepalive = 16",
    ]
    if upstream_extra:
        lines.append(upstream_extra)
    if syntax:
        lines.append(syntax)
    lines += [
        "",
        "[[server]]",
        'listen = ["127.0.0.1:%d"]' % port,
        "",
        "[[server.location]]",
        'path = "/api/"',
        'upstream = "%s"' % location_upstream,
        "",
    ]
    return "\n".join(lines) + "\n"


def line_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in config" % needle)


def write(tmp_path, name, text):
    p = os.path.join(str(tmp_path), name)
    with open(p, "w") as f:
        f.write(text)
    return p


def place_re(path, line):
    return re.compile(re.escape(path) + r":%d:\d+: " % line)


def check_rejected(path, text, needle, cwd=None, shown_path=None):
    """`torii -t -c path`: exit 1, no `ok`, stderr names shown_path:LINE:COL: of `needle`."""
    cp = run_torii(["-t", "-c", path], cwd=cwd)
    line = line_of(text, needle)
    assert cp.returncode == 1, "exit %d, stdout=%r stderr=%r" % (cp.returncode, cp.stdout,
                                                                 cp.stderr)
    assert not re.search(r"\bok\b", cp.stdout), cp.stdout
    assert place_re(shown_path or path, line).search(cp.stderr), \
        "expected %s:%d:COL: in stderr, got %r" % (shown_path or path, line, cp.stderr)
    return cp.stderr


def test_version():
    cp = run_torii(["-v"])
    assert cp.returncode == 0, cp.stderr
    out = cp.stdout
    assert "torii" in out.lower(), out
    assert re.search(r"\b\d+\.\d+\.\d+\b", out), "no version number in %r" % out
    for lib in ("libevent", "openssl", "nghttp2"):
        assert re.search(re.escape(lib) + r"\D{0,20}\d+\.\d+", out, re.I), \
            "%s and its version missing from %r" % (lib, out)
    assert re.search(r"\babi", out, re.I), "plugin ABI version missing from %r" % out


def test_check_good_config(tmp_path):
    port, admin, bport = harness.free_port(), harness.free_port(), harness.free_port()
    path = write(tmp_path, "good.toml", good_config(port, admin, bport))
    cp = run_torii(["-t", "-c", path])
    assert cp.returncode == 0, "stdout=%r stderr=%r" % (cp.stdout, cp.stderr)
    assert re.search(r"\bok\b", cp.stdout), cp.stdout
    # -t only checks: nothing keeps listening afterwards
    assert not harness.port_accepts(port) and not harness.port_accepts(admin)


def test_unknown_key(tmp_path):
    port = harness.free_port()
    text = numbered_config(port, upstream_extra="bogus_key = 1")
    err = check_rejected(write(tmp_path, "bad.toml", text), text, "bogus_key")
    assert "bogus_key" in err


def test_unknown_upstream_in_location(tmp_path):
    port = harness.free_port()
    text = numbered_config(port, location_upstream="nope")
    err = check_rejected(write(tmp_path, "bad.toml", text), text, 'upstream = "nope"')
    assert '"nope"' in err or "nope" in err


def test_unknown_balancer(tmp_path):
    port = harness.free_port()
    text = numbered_config(port, upstream_extra='balancer = "rr2"')
    err = check_rejected(write(tmp_path, "bad.toml", text), text, '"rr2"')
    assert 'unknown balancer "rr2"' in err


def test_error_names_path_as_given(tmp_path):
    # relative -c path: the message uses it as written
    port = harness.free_port()
    text = numbered_config(port, upstream_extra='balancer = "rr2"')
    write(tmp_path, "rel.toml", text)
    err = check_rejected("rel.toml", text, '"rr2"', cwd=str(tmp_path), shown_path="rel.toml")
    assert re.search(r"(^|\s)rel\.toml:\d+:\d+: ", err), err


def test_toml_syntax_error(tmp_path):
    port = harness.free_port()
    text = numbered_config(port, syntax="retries = = 1")
    check_rejected(write(tmp_path, "bad.toml", text), text, "retries = = 1")


def test_start_with_bad_config_exits_without_listening(procs):
    port = harness.free_port()
    text = numbered_config(port, upstream_extra='balancer = "rr2"')
    t = procs.torii(text, start=False)
    t.start(wait=False)
    accepted = False
    deadline = time.monotonic() + 5.0
    while t.proc.poll() is None and time.monotonic() < deadline:
        accepted = accepted or harness.port_accepts(port, timeout=0.05)
        time.sleep(0.02)
    rc = t.proc.poll()
    assert rc is not None, "torii kept running with a bad config"
    assert rc != 0
    assert not accepted and not harness.port_accepts(port)
    assert 'unknown balancer "rr2"' in t.log()
    assert place_re(t.config_path, line_of(text, '"rr2"')).search(t.log()), t.log()


def test_check_accepts_discovery_without_warning(tmp_path):
    # Discovery runs (in the fleet process): `-t` says ok and warns about nothing.
    port = harness.free_port()
    text = config(main_block(),
                  upstream_block("api", [harness.free_port()],
                                 discovery={"type": "dns", "name": "api.test", "port": 80}),
                  server_block([port], [{"path": "/", "upstream": "api"}]))
    path = tmp_path / "discovery.toml"
    path.write_text(text)
    line = text.splitlines().index("[upstream.api]") + 1
    res = run_torii(["-t", "-c", str(path)])
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.stdout, res.stderr)
    assert "warning" not in res.stderr, (line, res.stderr)


def test_check_warns_about_admin_listen_off_loopback(tmp_path):
    # An admin API on 0.0.0.0 without a token is reachable from the network: `-t` says so
    # with the place, and still succeeds (it is a warning, not an error).
    port, admin = harness.free_port(), harness.free_port()
    text = config(main_block(), '[admin]\nlisten = "0.0.0.0:%d"\n' % admin,
                  server_block([port], [{"path": "/", "return": {"status": 200, "body": "x"}}]))
    path = write(tmp_path, "open-admin.toml", text)
    res = run_torii(["-t", "-c", path])
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.stdout, res.stderr)
    line = line_of(text, "0.0.0.0:%d" % admin)
    assert ('warning: %s:%d:1: [admin] listen "0.0.0.0:%d" is not a loopback address and '
            '[admin] token is not set: the admin API is reachable from the network' %
            (path, line, admin)) in res.stderr, \
        res.stderr


def test_check_no_admin_warning_on_loopback(tmp_path):
    port, admin = harness.free_port(), harness.free_port()
    text = config(main_block(admin_port=admin),
                  server_block([port], [{"path": "/", "return": {"status": 200, "body": "x"}}]))
    path = write(tmp_path, "admin.toml", text)
    res = run_torii(["-t", "-c", path])
    assert res.returncode == 0 and res.stdout.strip() == "ok", (res.stdout, res.stderr)
    assert "warning" not in res.stderr and "[admin]" not in res.stderr, res.stderr


def test_access_log_format_unknown_variable(tmp_path):
    port = harness.free_port()
    text = numbered_config(port).replace(
        'access_log = "off"\n', 'access_log = "off"\naccess_log_format = "$remote_addr $nope"\n')
    err = check_rejected(write(tmp_path, "bad.toml", text), text, "access_log_format")
    assert '[main] access_log_format: unknown variable "$nope"' in err
    # The same for -T, which checks before it prints anything.
    cp = run_torii(["-T", "-c", os.path.join(str(tmp_path), "bad.toml")])
    assert cp.returncode == 1 and cp.stdout == "" and '"$nope"' in cp.stderr


def test_access_log_format_refuses_a_newline(tmp_path):
    port = harness.free_port()
    text = numbered_config(port).replace(
        'access_log = "off"\n', 'access_log = "off"\naccess_log_format = "$status\\n$uri"\n')
    err = check_rejected(write(tmp_path, "bad.toml", text), text, "access_log_format")
    assert "would split" in err
