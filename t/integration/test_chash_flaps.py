"""Consistent hashing stays put while health flaps (#13 item 3, docs/upstreams.md): the ring
is built over every target of the table, and a target marked down only hands its own keys to
the next points of the ring; when it comes back it gets exactly those keys back.

Ten real backends; one is stopped, marked down for the whole machine by its first failed
attempt (max_fails = 1), then started again on its port and taken back after fail_timeout.
"""

import collections
import http.client
import json

import harness
from harness import config, main_block, server_block, upstream_block

KEYS = ["user-%d" % i for i in range(1000)]


def key_map(port):
    out = {}
    conn = http.client.HTTPConnection(harness.HOST, port, timeout=10)
    try:
        for k in KEYS:
            conn.request("GET", "/k", headers={"X-User": k})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, (k, r.status, body[:200])
            out[k] = json.loads(body)["backend"]
    finally:
        conn.close()
    return out


def test_one_target_down_moves_only_its_keys_and_gets_them_back(procs):
    names = ["b%d" % i for i in range(10)]
    backends = {n: procs.backend(n) for n in names}
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(workers=2, admin_port=admin),
        upstream_block("ch", [backends[n].port for n in names], balancer="chash",
                       hash_key="$http_x_user", keepalive=16, connect_timeout="1s",
                       read_timeout="5s", retries=1),
        '[upstream.ch.health]\nenabled = false\nmax_fails = 1\nfail_timeout = "8s"\n',
        server_block([port], [{"path": "/", "upstream": "ch"}]))
    procs.torii(text)

    before = key_map(port)
    share = collections.Counter(before.values())
    assert set(share) == set(names), share
    victim = "b3"
    victim_port = backends[victim].port
    backends[victim].stop()

    # Its first failed attempt (a retry answers the client) marks it down machine-wide.
    def marked_down():
        key = next(k for k in KEYS if before[k] == victim)
        conn = http.client.HTTPConnection(harness.HOST, port, timeout=10)
        conn.request("GET", "/k", headers={"X-User": key})
        conn.getresponse().read()
        conn.close()
        r = harness.request(admin, "GET", "/upstreams/ch")
        t = {x["address"]: x for x in json.loads(r.body)["targets"]}
        return t["%s:%d" % (harness.HOST, victim_port)]["health"] == "down"
    assert harness.wait_until(marked_down, 5, interval=0.1)

    during = key_map(port)
    moved = [k for k in KEYS if during[k] != before[k]]
    assert all(before[k] == victim for k in moved), \
        collections.Counter((before[k], during[k]) for k in moved if before[k] != victim)
    assert all(during[k] != victim for k in KEYS)
    # At most its own share, plus two points of slack.
    assert len(moved) / len(KEYS) <= share[victim] / len(KEYS) + 0.02, (len(moved), share)
    assert len(moved) == share[victim]  # every key it had moved, and only those
    heirs = collections.Counter(during[k] for k in moved)
    assert len(heirs) >= 2, "one neighbour took all of %s's keys: %r" % (victim, heirs)

    # Back on the same port: after fail_timeout it takes exactly its old keys again.
    back = harness.Backend(victim, workdir=backends[victim].workdir, port=victim_port)
    procs.items.append(back)
    back.start()

    def recovered():
        r = harness.request(admin, "GET", "/upstreams/ch")
        t = {x["address"]: x for x in json.loads(r.body)["targets"]}
        return t["%s:%d" % (harness.HOST, victim_port)]["health"] == "up"
    assert harness.wait_until(recovered, 20, interval=0.2)
    after = key_map(port)
    assert after == before, collections.Counter(
        (before[k], after[k]) for k in KEYS if after[k] != before[k])
