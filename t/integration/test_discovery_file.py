"""File discovery (SPEC section 2, discovery = { type = "file" }; issue #13): torii follows a
targets file, one "host:port [weight]" a line, picking up a line added and a line removed
with traffic following on both workers, and survives a broken file: the last good list
stays in force, the error is in the log and in GET /upstreams, and the next good version is
taken.

Backends listen on 127.0.0.2 and 127.0.0.3 (all of 127.0.0.0/8 is loopback).
"""

import collections
import json
import os

import harness
from harness import config, main_block, request, server_block


def backend_on(procs, name, host):
    b = harness.Backend(name, workdir=procs._dir("backend-" + name),
                        extra_args=["--host", host])
    procs.items.append(b)
    b.start()
    b.addr = "%s:%d" % (host, b.port)
    return b


def write_targets(path, text):
    """Replaces the file whole (temporary file, then rename), as writers should (see
    modules/discovery/file_discovery.h: a file read half-written may parse as a shorter list)."""
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def gateway(procs, targets_path):
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(workers=2, admin_port=admin),
        "[upstream.api]\nkeepalive = 4\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n"
        "discovery = { type = \"file\", path = %s, interval = \"200ms\" }\n"
        % json.dumps(targets_path),
        server_block([port], [{"path": "/", "upstream": "api"}]))
    t = procs.torii(text)
    t.port, t.admin = port, admin
    return t


def upstream_doc(t):
    r = request(t.admin, "GET", "/upstreams")
    assert r.status == 200, r.body
    return json.loads(r.body)["upstreams"]["api"]


def serving(t):
    """{address: target} of the targets that take new requests."""
    return {x["address"]: x for x in upstream_doc(t)["targets"] if x["health"] == "up"}


def spread(t, n=24):
    names = collections.Counter()
    for i in range(n):
        r = request(t.port, "GET", "/spread?i=%d" % i)
        names[json.loads(r.body)["backend"] if r.status == 200 else r.status] += 1
    return names


def test_file_discovery_follows_the_file_and_survives_a_broken_one(procs, tmp_path):
    b2 = backend_on(procs, "b2", "127.0.0.2")
    b3 = backend_on(procs, "b3", "127.0.0.3")
    path = str(tmp_path / "api.targets")
    write_targets(path, "# the api pool\n%s\n" % b2.addr)
    t = gateway(procs, path)

    assert harness.wait_until(lambda: set(serving(t)) == {b2.addr}, 5), upstream_doc(t)
    doc = upstream_doc(t)
    assert doc["discovery"]["type"] == "file" and doc["discovery"]["state"] == "ok", doc
    assert serving(t)[b2.addr]["source"] == "file"
    assert set(spread(t, 8)) == {"b2"}

    # A line added, with a weight.
    write_targets(path, "# the api pool\n%s\n%s 3\n" % (b2.addr, b3.addr))
    assert harness.wait_until(lambda: set(serving(t)) == {b2.addr, b3.addr}, 5), upstream_doc(t)
    assert serving(t)[b3.addr]["weight"] == 3
    names = spread(t)
    assert names["b2"] > 0 and names["b3"] > 0 and set(names) == {"b2", "b3"}, names

    # Broken: line 3 is no target. The list stays, the error shows.
    write_targets(path, "# the api pool\n%s\nb3.internal:%d\n" % (b2.addr, b3.port))
    assert harness.wait_until(lambda: upstream_doc(t)["discovery"]["state"] == "failing", 5)
    message = upstream_doc(t)["discovery"]["message"]
    assert message.startswith("file %s: line 3: " % path), message
    assert "b3.internal" in message, message
    assert harness.wait_until(lambda: message in t.log(), 5), t.log()[-2000:]
    assert "keeping the last known targets" in t.log()
    assert set(serving(t)) == {b2.addr, b3.addr}
    names = spread(t)
    assert names["b2"] > 0 and names["b3"] > 0 and set(names) == {"b2", "b3"}, names

    # Fixed, with b2's line removed: b2 leaves, traffic goes to b3 alone.
    write_targets(path, "%s 3\n" % b3.addr)
    assert harness.wait_until(lambda: set(serving(t)) == {b3.addr}, 5), upstream_doc(t)
    assert upstream_doc(t)["discovery"]["state"] == "ok"
    assert harness.wait_until(lambda: set(spread(t, 12)) == {"b3"}, 5)
    assert harness.wait_until(
        lambda: b2.addr not in {x["address"] for x in upstream_doc(t)["targets"]}, 5)
