"""etcd discovery (SPEC section 2, [upstream.X] discovery = { type = "etcd" }): two torii
instances follow one key prefix of a real etcd (Debian's etcd-server on loopback ports,
started and stopped here by PID), the APISIX model. Keys are written through etcd's own
JSON gateway, the API torii reads.

Covered: a key put -> traffic reaches its target on both instances; a key deleted -> traffic
leaves it; a bad value is skipped and named in the log; etcd stopped -> both keep serving
the last list and say so (log, GET /upstreams); changes made while torii could not see etcd
(etcd serving on another port meanwhile) -> picked up once etcd is back.
"""

import base64
import collections
import http.client
import json
import os
import subprocess

import pytest

import harness
from harness import config, main_block, request, server_block, upstream_block

ETCD = "/usr/bin/etcd"
PREFIX = "/torii/upstreams/api/"
WAIT = 15.0  # seconds: any change must reach both instances within this


def b64(text):
    return base64.b64encode(text.encode()).decode()


class Etcd:
    """One etcd member with its data in `workdir`; start(port) serves clients on that port
    (the data stays across restarts, the port may change)."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.peer = harness.free_port()
        self.port = None
        self.proc = None

    def start(self, port):
        self.port = port
        client = "http://%s:%d" % (harness.HOST, port)
        peer = "http://%s:%d" % (harness.HOST, self.peer)
        log = open(os.path.join(self.workdir, "etcd.log"), "ab")
        self.proc = subprocess.Popen(
            [ETCD, "--name", "default", "--data-dir", os.path.join(self.workdir, "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", "default=" + peer],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        harness._live.append(self)
        # Ready once it takes a write (a single member elects itself first).
        if not harness.wait_until(lambda: self._try_put("/torii-ready", "1"), WAIT, 0.2):
            self.stop()
            raise harness.HarnessError("etcd did not start; see %s/etcd.log" % self.workdir)
        return self

    def stop(self):
        harness.stop_process(self.proc)
        self.proc = None
        if self in harness._live:
            harness._live.remove(self)

    def call(self, path, doc):
        conn = http.client.HTTPConnection(harness.HOST, self.port, timeout=5)
        try:
            conn.request("POST", path, body=json.dumps(doc),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, (path, r.status, body)
            return json.loads(body)
        finally:
            conn.close()

    def _try_put(self, key, value):
        try:
            self.put(key, value)
            return True
        except (OSError, AssertionError, http.client.HTTPException):
            return False

    def put(self, key, value):
        if not isinstance(value, str):
            value = json.dumps(value)
        self.call("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def delete(self, key):
        self.call("/v3/kv/deleterange", {"key": b64(key)})


def gateway(procs, etcd_port):
    port, admin = harness.free_port(), harness.free_port()
    discovery = {"type": "etcd", "endpoints": ["http://%s:%d" % (harness.HOST, etcd_port)],
                 "prefix": PREFIX, "interval": "1s"}
    text = config(main_block(workers=2, admin_port=admin),
                  upstream_block("api", [], discovery=discovery, keepalive=0,
                                 connect_timeout="1s", read_timeout="5s", retries=1),
                  server_block([port], [{"path": "/", "upstream": "api"}]))
    t = procs.torii(text)
    t.port, t.admin = port, admin
    return t


def spread(t, n=16):
    """Backend names (or error statuses) answering n requests, each on a fresh connection
    (so both workers serve some)."""
    names = collections.Counter()
    for i in range(n):
        r = request(t.port, "GET", "/spread?i=%d" % i)
        names[json.loads(r.body)["backend"] if r.status == 200 else r.status] += 1
    return names


def upstream_doc(t):
    r = request(t.admin, "GET", "/upstreams")
    assert r.status == 200, r.body
    return json.loads(r.body)["upstreams"]["api"]


def addr(b):
    return "%s:%d" % (harness.HOST, b.port)


def all_serve(gateways, names):
    """Every gateway sends traffic to exactly the backends `names`."""
    want = set(names)
    return harness.wait_until(lambda: all(set(spread(t)) == want for t in gateways), WAIT, 0.2)


@pytest.fixture
def etcd(procs, tmp_path):
    if not os.access(ETCD, os.X_OK):
        pytest.fail("etcd-server is not installed (make deps)")
    e = Etcd(str(tmp_path))
    procs.items.append(e)  # stopped with the others at teardown
    return e


def test_two_gateways_follow_one_prefix(procs, etcd):
    b1, b2, b3 = procs.backend("b1"), procs.backend("b2"), procs.backend("b3")
    client = harness.free_port()
    etcd.start(client)
    etcd.put(PREFIX + "b1", {"address": addr(b1)})
    etcd.put("/torii/upstreams/other/b3", {"address": addr(b3)})  # another prefix: not ours
    g1, g2 = gateway(procs, client), gateway(procs, client)
    gateways = [g1, g2]

    # A key put: both instances send traffic there.
    assert all_serve(gateways, ["b1"]), [spread(t) for t in gateways]
    etcd.put(PREFIX + "b2", {"address": addr(b2), "weight": 3})
    assert all_serve(gateways, ["b1", "b2"]), [spread(t) for t in gateways]
    for t in gateways:
        got = {x["address"]: x for x in upstream_doc(t)["targets"]}
        assert set(got) == {addr(b1), addr(b2)}, got
        assert got[addr(b2)]["weight"] == 3 and got[addr(b2)]["source"] == "etcd", got

    # A key deleted: traffic leaves its target.
    etcd.delete(PREFIX + "b1")
    assert all_serve(gateways, ["b2"]), [spread(t) for t in gateways]

    # Bad values are skipped and named; the good key stays.
    etcd.put(PREFIX + "broken", "not json")
    etcd.put(PREFIX + "named", {"address": "backend.internal:80"})
    for t in gateways:
        assert harness.wait_until(
            lambda: 'key "%snamed"' % PREFIX in t.log() and 'key "%sbroken"' % PREFIX in t.log(),
            WAIT), t.log()[-3000:]
        assert set(spread(t)) == {"b2"}
        assert {x["address"] for x in upstream_doc(t)["targets"]} == {addr(b2)}
        assert upstream_doc(t)["discovery"]["state"] == "ok", upstream_doc(t)
    etcd.delete(PREFIX + "broken")
    etcd.delete(PREFIX + "named")

    # etcd gone: both keep serving the last list and say so.
    etcd.stop()
    url = "etcd http://%s:%d: " % (harness.HOST, client)
    for t in gateways:
        assert harness.wait_until(lambda: upstream_doc(t)["discovery"]["state"] == "failing",
                                  WAIT), upstream_doc(t)
        assert url in upstream_doc(t)["discovery"]["message"], upstream_doc(t)
        assert url in t.log() and "keeping the last known targets" in t.log(), t.log()[-3000:]
        assert set(spread(t)) == {"b2"}

    # Changes torii cannot see: etcd serves another port meanwhile.
    etcd.start(harness.free_port())
    etcd.put(PREFIX + "b3", {"address": addr(b3)})
    etcd.delete(PREFIX + "b2")
    etcd.stop()
    for t in gateways:
        assert set(spread(t)) == {"b2"}

    # etcd back where torii looks: the changes are picked up, the source works again.
    etcd.start(client)
    assert all_serve(gateways, ["b3"]), [spread(t) for t in gateways]
    for t in gateways:
        assert harness.wait_until(lambda: upstream_doc(t)["discovery"]["state"] == "ok",
                                  WAIT), upstream_doc(t)
        assert {x["address"] for x in upstream_doc(t)["targets"]} == {addr(b3)}
    # And the watch runs again.
    etcd.put(PREFIX + "b1", {"address": addr(b1)})
    assert all_serve(gateways, ["b1", "b3"]), [spread(t) for t in gateways]
