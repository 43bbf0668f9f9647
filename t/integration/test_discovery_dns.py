"""DNS discovery (SPEC section 2, discovery = { type = "dns" }; issue #13) against a real DNS
server: Debian's dnsmasq on a loopback port, answering from a hosts file it re-reads on
SIGHUP. torii picks up an added and a removed address with traffic following on both
workers; SRV records give ports and weights; with the server gone the last list stays and
the failure shows in the log and GET /upstreams, and it heals when the server is back.

Backends listen on 127.0.0.2, 127.0.0.3, ... (all of 127.0.0.0/8 is loopback).
"""

import collections
import json
import os
import signal
import socket
import subprocess

import pytest

import harness
from harness import config, main_block, request, server_block

DNSMASQ = "/usr/sbin/dnsmasq"


def free_udp_and_tcp_port():
    for _ in range(200):
        port = harness.free_port()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((harness.HOST, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise harness.HarnessError("no port free for both UDP and TCP")


def dns_answers(port, name="ready.test"):
    """Whether the server answers a query for `name` (any answer, NXDOMAIN included)."""
    q = b"\x00\x2a\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    q += b"".join(bytes([len(x)]) + x.encode() for x in name.split(".")) + b"\x00\x00\x01\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    try:
        s.sendto(q, (harness.HOST, port))
        return s.recv(1500)[:2] == b"\x00\x2a"
    except OSError:
        return False
    finally:
        s.close()


class Dnsmasq:
    """dnsmasq on 127.0.0.1:port for the zone "test" only (other names there: NXDOMAIN),
    answering from WORKDIR/hosts with a TTL of 1 s; stopped by its PID."""

    def __init__(self, workdir, extra_args=(), port=None):
        self.workdir = workdir
        self.hosts = os.path.join(workdir, "hosts")
        self.port = port or free_udp_and_tcp_port()
        self.extra_args = list(extra_args)
        self.proc = None
        if not os.path.exists(self.hosts):
            self.write_hosts("")

    @property
    def resolver(self):
        return "%s:%d" % (harness.HOST, self.port)

    def write_hosts(self, text):
        with open(self.hosts + ".tmp", "w") as f:
            f.write(text)
        os.rename(self.hosts + ".tmp", self.hosts)

    def reload(self):
        """SIGHUP: dnsmasq clears its cache and reads the hosts file again."""
        self.proc.send_signal(signal.SIGHUP)

    def start(self):
        if not os.access(DNSMASQ, os.X_OK):
            pytest.skip("Debian's dnsmasq is not installed")
        args = [DNSMASQ, "--no-daemon", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--addn-hosts=" + self.hosts, "--local=/test/", "--local-ttl=1",
                "--pid-file=", "--user=root", "--log-facility=-"] + self.extra_args
        with open(os.path.join(self.workdir, "dnsmasq.log"), "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        harness._live.append(self)
        if not harness.wait_until(lambda: self.proc.poll() is not None or dns_answers(self.port),
                                  5) or self.proc.poll() is not None:
            self.stop()
            raise harness.HarnessError("dnsmasq did not start: " + open(
                os.path.join(self.workdir, "dnsmasq.log")).read()[-2000:])
        return self

    def stop(self):
        harness.stop_process(self.proc)
        if self in harness._live:
            harness._live.remove(self)


def dnsmasq(procs, extra_args=()):
    d = Dnsmasq(procs._dir("dnsmasq"), extra_args)
    procs.items.append(d)
    return d


def backend_on(procs, name, host, port=None):
    b = harness.Backend(name, workdir=procs._dir("backend-" + name), port=port,
                        extra_args=["--host", host])
    procs.items.append(b)
    b.start()
    b.addr = "%s:%d" % (host, b.port)
    return b


def gateway(procs, discovery, balancer="round_robin"):
    port, admin = harness.free_port(), harness.free_port()
    text = config(
        main_block(workers=2, admin_port=admin),
        "[upstream.api]\nkeepalive = 4\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n"
        "balancer = %s\ndiscovery = %s\n"
        % (json.dumps(balancer), harness.toml_value(discovery)),
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


def test_a_records_added_and_removed_with_traffic_following(procs):
    b2 = backend_on(procs, "b2", "127.0.0.2")
    b3 = backend_on(procs, "b3", "127.0.0.3", port=b2.port)  # A records share one port
    dns = dnsmasq(procs)
    dns.write_hosts("127.0.0.2 api.test\n")
    dns.start()
    # A minute between lookups: only the records' TTL (1 s) can explain a quick pickup.
    t = gateway(procs, {"type": "dns", "name": "api.test", "port": b2.port,
                        "resolver": dns.resolver, "interval": "60s"})

    assert harness.wait_until(lambda: set(serving(t)) == {b2.addr}, 5), upstream_doc(t)
    assert serving(t)[b2.addr]["source"] == "dns"
    assert upstream_doc(t)["discovery"]["state"] == "ok"
    assert set(spread(t, 8)) == {"b2"}

    dns.write_hosts("127.0.0.2 api.test\n127.0.0.3 api.test\n")
    dns.reload()
    assert harness.wait_until(lambda: set(serving(t)) == {b2.addr, b3.addr}, 5), upstream_doc(t)
    names = spread(t)
    assert names["b2"] > 0 and names["b3"] > 0 and set(names) == {"b2", "b3"}, names

    dns.write_hosts("127.0.0.3 api.test\n")
    dns.reload()
    assert harness.wait_until(lambda: set(serving(t)) == {b3.addr}, 5), upstream_doc(t)
    assert harness.wait_until(lambda: set(spread(t, 12)) == {"b3"}, 5)
    assert "dns discovery" in t.log() and "joined" in t.log(), t.log()[-2000:]


def test_the_server_gone_keeps_the_last_list_until_it_is_back(procs):
    b2 = backend_on(procs, "b2", "127.0.0.2")
    dns = dnsmasq(procs)
    dns.write_hosts("127.0.0.2 api.test\n")
    dns.start()
    t = gateway(procs, {"type": "dns", "name": "api.test", "port": b2.port,
                        "resolver": dns.resolver, "interval": "500ms"})
    assert harness.wait_until(lambda: set(serving(t)) == {b2.addr}, 5), upstream_doc(t)

    dns.stop()
    # A lookup gives up after 2 attempts of 2 s.
    assert harness.wait_until(lambda: upstream_doc(t)["discovery"]["state"] == "failing", 10)
    message = upstream_doc(t)["discovery"]["message"]
    assert message.startswith("dns: api.test A") and "timed out" in message, message
    assert dns.resolver in message, message
    assert harness.wait_until(lambda: message in t.log(), 5), t.log()[-2000:]
    assert set(serving(t)) == {b2.addr}
    assert set(spread(t, 8)) == {"b2"}

    dns.start()  # the same port
    assert harness.wait_until(lambda: upstream_doc(t)["discovery"]["state"] == "ok", 10)
    assert "dns discovery works again" in t.log()
    assert set(serving(t)) == {b2.addr}


def test_srv_records_give_ports_and_weights(procs):
    b2 = backend_on(procs, "b2", "127.0.0.2")
    b3 = backend_on(procs, "b3", "127.0.0.3")
    b4 = backend_on(procs, "b4", "127.0.0.4")
    dns = dnsmasq(procs, [
        "--srv-host=_api._tcp.test,b2.test,%d,10,1" % b2.port,
        "--srv-host=_api._tcp.test,b3.test,%d,10,3" % b3.port,
        # A lower priority (a higher number): a backup, not used while priority 10 answers.
        "--srv-host=_api._tcp.test,b4.test,%d,20,1" % b4.port,
    ])
    dns.write_hosts("127.0.0.2 b2.test\n127.0.0.3 b3.test\n127.0.0.4 b4.test\n")
    dns.start()
    t = gateway(procs, {"type": "dns", "name": "_api._tcp.test", "resolver": dns.resolver,
                        "interval": "500ms"}, balancer="weighted")

    assert harness.wait_until(lambda: set(serving(t)) == {b2.addr, b3.addr}, 5), upstream_doc(t)
    got = serving(t)
    assert got[b2.addr]["weight"] == 1 and got[b3.addr]["weight"] == 3, got
    names = spread(t, 40)  # weighted round robin on each of two workers: 1 to 3 each
    assert set(names) == {"b2", "b3"} and names["b3"] >= 2 * names["b2"], names

    # b3.test loses its address: the SRV record stays, b3 leaves.
    dns.write_hosts("127.0.0.2 b2.test\n127.0.0.4 b4.test\n")
    dns.reload()
    assert harness.wait_until(lambda: set(serving(t)) == {b2.addr}, 5), upstream_doc(t)
    assert harness.wait_until(lambda: set(spread(t, 12)) == {"b2"}, 5)
