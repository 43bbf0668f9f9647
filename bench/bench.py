#!/usr/bin/python3
"""make bench: torii against nginx and HAProxy, side by side, in one run.

Every proxy runs one worker pinned to core 0; the load generator and the backend (an nginx
serving fixed bodies, never the bottleneck for one proxy worker) share core 1. Scenarios run
for a few seconds per proxy, interleaving the proxies over several rounds; the table shows
medians and torii's ratios to nginx and HAProxy.

On a 2-core machine the client+backend core saturates near nginx's req/s, so req/s cannot
show a more efficient proxy: efficiency is judged by the proxy's CPU time per request,
instructions per request (callgrind, stable on noisy machines) and syscalls per request
(strace -c). req/s and p99 are sanity checks.

TLS rows: each proxy terminates TLS (1.3, X25519, TLS_AES_256_GCM_SHA384) with the same
self-signed ECDSA P-256 certificate and proxies to the same backend as the plain rows. Keep-alive
over TLS is driven by wrk (https), its callgrind row by a client here that connects before
counting starts; full handshakes by client processes here (Python's ssl): a new connection per
request that never offers a session, and the row fails if any handshake was resumed (wrk and
h2load resume sessions when they reconnect, so neither can drive that row).

TCP relay rows: each proxy relays raw TCP (torii: a tcp server; nginx: its stream module;
HAProxy: mode tcp, its defaults, so no splicing) to the same backend, and wrk's keep-alive
requests for 1 MiB responses pass through the relay; CPU per MiB is the measure (the
responses' bytes; request and head bytes are under 0.1%). Callgrind counts user-space
instructions per MiB, which hides what a relay makes the kernel do: read CPU with it.

Latency row (latency_row.py, --rows latency-p99): p50/p99/p99.9 at 80% of nginx's bare
maximum req/s, sent open loop by build/torii_loadgen (bench/loadgen/: a fixed schedule, each
latency from its request's due time, so a stall shows in the tail instead of slowing the
client down) to nginx, torii, torii with the gateway chain and HAProxy, all four running at
once and served in turn, a tenth of a second each, so the machine's slow spells fall on all.

--rows picks rows (see ROWS), e.g. --rows instructions,tls-keepalive,tls-handshake,tcp.

Everything listens on 127.0.0.1 and every process started here is stopped by its PID.
"""

import argparse
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
PROXY_CPU = "0"
LOAD_CPU = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIG = 1024 * 1024
HANDSHAKE_CLIENTS = 4  # closed-loop client processes for the full-handshake row
PROFILE_DIR = None  # --profile-dir: where callgrind outputs are kept

started = []  # every Popen we made, stopped at exit whatever happens


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((HOST, port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %d" % port)


def start(cmd, cpu, cwd=None, log_path=None):
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(["taskset", "-c", cpu] + cmd, cwd=cwd, stdout=out, stderr=out,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    started.append(p)
    return p


def children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
        except OSError:
            pass
    return kids


def stop(p):
    if p.poll() is not None:
        return
    tree = children(p.pid)
    for pid in [p.pid] + tree:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        for pid in [p.pid] + tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=5)
    for pid in tree:  # reap-less children of a daemon-style master: make sure they are gone
        for _ in range(50):
            if not os.path.exists("/proc/%d" % pid):
                break
            time.sleep(0.05)


def stop_all():
    for p in reversed(started):
        try:
            stop(p)
        except Exception as e:  # keep stopping the rest
            log("stop:", e)


# ---------------------------------------------------------------------------------------------
# The proxies under test and the backend

class Backend:
    def __init__(self, work):
        self.port = free_port()
        self.dir = os.path.join(work, "backend")
        os.makedirs(self.dir, mode=0o755)
        with open(os.path.join(self.dir, "big.bin"), "wb") as f:
            f.write(os.urandom(BIG))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {
        listen %(h)s:%(p)d backlog=4096;
        location = /small { return 200 "hello from the backend\\n"; }
        location = /big { alias %(d)s/big.bin; }
    }
}
""" % {"d": self.dir, "h": HOST, "p": self.port})
        self.proc = start(["nginx", "-c", conf, "-p", self.dir], LOAD_CPU)
        wait_port(self.port)


class Proxy:
    name = "?"

    def __init__(self, work, backend, tls=None, tcp=False):
        self.port = free_port()
        self.tls = tls  # a Cert: the listener terminates TLS with it
        self.tcp = tcp  # relay raw TCP to the backend instead of proxying HTTP
        self.dir = os.path.join(work, "%s%s%s-%d" % (self.name, "-tls" if tls else "",
                                                     "-tcp" if tcp else "", self.port))
        os.makedirs(self.dir)
        self.backend = backend
        self.proc = None

    @property
    def label(self):
        return self.name + (" (TLS)" if self.tls else "") + (" (TCP)" if self.tcp else "")

    def url(self, path):
        return "%s://%s:%d%s" % ("https" if self.tls else "http", HOST, self.port, path)

    def command(self, single_process=False):
        raise NotImplementedError

    def start(self, wrapper=()):
        self.proc = start(list(wrapper) + self.command(single_process=bool(wrapper)), PROXY_CPU,
                          cwd=self.dir, log_path=os.path.join(self.dir, "stderr.log"))
        wait_port(self.port, timeout=60)
        time.sleep(0.2)

    def stop(self):
        if self.proc:
            stop(self.proc)
            self.proc = None

    def pids(self):
        """Every process of the proxy (master and workers)."""
        return [self.proc.pid] + children(self.proc.pid)

    def worker_pids(self):
        kids = children(self.proc.pid)
        return kids or [self.proc.pid]


class Torii(Proxy):
    name = "torii"
    extra = ""  # config text appended (plugins), for the plugin-cost rows

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "torii.toml")
        if self.tcp:
            with open(conf, "w") as f:
                f.write("""
[main]
workers = 1
master_process = %(master)s
error_log = "%(d)s/error.log"
access_log = "off"
log_level = "warn"
plugin_dir = "%(plugins)s"

[upstream.backend]
protocol = "tcp"
targets = [ { address = "%(h)s:%(bp)d" } ]

[[server]]
listen = ["%(h)s:%(p)d"]
protocol = "tcp"
upstream = "backend"
""" % {"d": self.dir, "h": HOST, "p": self.port, "bp": self.backend.port,
       "plugins": os.path.join(BUILD, "plugins"),
       "master": "false" if single_process else "true"})
            return [os.path.join(BUILD, "torii"), "-c", conf]
        with open(conf, "w") as f:
            f.write("""
[main]
workers = 1
master_process = %(master)s
error_log = "%(d)s/error.log"
access_log = "off"
log_level = "warn"
plugin_dir = "%(plugins)s"

[upstream.backend]
targets = [ { address = "%(h)s:%(bp)d" } ]
keepalive = 64

[[server]]
listen = ["%(h)s:%(p)d"]
client_max_body_size = "8m"
%(tls)s
[[server.location]]
path = "/"
upstream = "backend"
%(extra)s
""" % {"extra": self.extra, "d": self.dir,
       "tls": 'tls = { cert = "%s", key = "%s" }\n' % (self.tls.cert, self.tls.key)
              if self.tls else "", "h": HOST, "p": self.port, "bp": self.backend.port,
       "plugins": os.path.join(BUILD, "plugins"),
       "master": "false" if single_process else "true"})
        return [os.path.join(BUILD, "torii"), "-c", conf]


class Nginx(Proxy):
    name = "nginx"

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "nginx.conf")
        if self.tcp:  # the stream module (Debian: libnginx-mod-stream), its defaults
            with open(conf, "w") as f:
                f.write("""
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
master_process %(master)s;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
stream {
    upstream backend { server %(h)s:%(bp)d; }
    server {
        listen %(h)s:%(p)d backlog=4096;
        proxy_pass backend;
    }
}
""" % {"d": self.dir, "h": HOST, "p": self.port, "bp": self.backend.port,
       "master": "off" if single_process else "on"})
            return ["nginx", "-c", conf, "-p", self.dir]
        with open(conf, "w") as f:
            f.write("""
worker_processes 1;
daemon off;
master_process %(master)s;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backend { server %(h)s:%(bp)d; keepalive 64; }
    server {
        listen %(h)s:%(p)d backlog=4096%(ssl)s;
%(tls)s        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering on;
            proxy_max_temp_file_size 0;  # stream like torii and HAProxy: no disk buffering
        }
    }
}
""" % {"d": self.dir, "h": HOST, "p": self.port, "bp": self.backend.port,
       "master": "off" if single_process else "on",
       "ssl": " ssl" if self.tls else "",
       # nginx's defaults otherwise: tickets on, no session cache (resumption by ticket, as
       # torii); TLS 1.2 and 1.3 as torii.
       "tls": ("        ssl_certificate %s;\n        ssl_certificate_key %s;\n"
               "        ssl_protocols TLSv1.2 TLSv1.3;\n" % (self.tls.cert, self.tls.key))
              if self.tls else ""})
        return ["nginx", "-c", conf, "-p", self.dir]


class Haproxy(Proxy):
    name = "haproxy"

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "haproxy.cfg")
        if self.tcp:  # mode tcp with HAProxy's defaults (no option splice-*)
            with open(conf, "w") as f:
                f.write("""
global
    maxconn %(maxconn)d
    nbthread 1
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend f
    bind %(h)s:%(p)d
    default_backend b
backend b
    server s1 %(h)s:%(bp)d
""" % {"h": HOST, "p": self.port, "bp": self.backend.port, "maxconn": self.maxconn()})
            return ["haproxy", "-db", "-f", conf]
        with open(conf, "w") as f:
            f.write("""
global
    # HAProxy reserves two descriptors per connection: under this machine's hard limit of
    # 20000 open files it cannot accept more than about 9900 clients.
    maxconn %(maxconn)d
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    http-reuse always
    option forwardfor
frontend f
    bind %(h)s:%(p)d%(ssl)s
    http-request set-header X-Real-IP %%[src]
    http-request set-header X-Forwarded-Proto %(scheme)s
    default_backend b
backend b
    server s1 %(h)s:%(bp)d
""" % {"h": HOST, "p": self.port, "bp": self.backend.port, "maxconn": self.maxconn(),
       # crt: certificate and key in one PEM; ALPN http/1.1 as torii and nginx offer
       "ssl": " ssl crt %s alpn http/1.1 ssl-min-ver TLSv1.2" % self.tls.combined
              if self.tls else "",
       "scheme": "https" if self.tls else "http"})
        return ["haproxy", "-db", "-f", conf]

    @staticmethod
    def maxconn():
        import resource
        return min(30000, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200) // 2)


class Cert:
    """One self-signed ECDSA P-256 certificate for every proxy's TLS listener (openssl CLI, as
    t/integration/pki.py makes them)."""

    def __init__(self, work):
        d = os.path.join(work, "pki")
        os.makedirs(d, mode=0o755)
        self.cert = os.path.join(d, "bench.pem")
        self.key = os.path.join(d, "bench.key")
        self.combined = os.path.join(d, "bench-combined.pem")  # HAProxy's crt: both in one
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "30", "-subj", "/CN=bench.test", "-addext",
                        "subjectAltName=DNS:bench.test,IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        with open(self.combined, "w") as out:
            for path in (self.cert, self.key):
                with open(path) as f:
                    out.write(f.read())
        for path in (self.cert, self.key, self.combined):
            os.chmod(path, 0o644)  # nginx and HAProxy read them as root; keep it simple


def tls_parameters(proxy):
    """What one handshake with the proxy negotiated (openssl s_client), and how many session
    tickets the proxy sends after it: the handshake rows compare like with like only if these
    match."""
    r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (HOST, proxy.port),
                        "-servername", "bench.test", "-alpn", "http/1.1", "-ign_eof"],
                       input=b"GET /small HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    proto = re.search(r"Protocol\s*:\s*(\S+)", out) or re.search(r"New, (TLSv[\d.]+)", out)
    cipher = re.search(r"Cipher is (\S+)", out)
    group = re.search(r"Server Temp Key: (\S+)", out)
    sig = re.search(r"Peer signature type: (\S+)", out)
    tickets = out.count("Post-Handshake New Session Ticket arrived")
    ok = "hello from the backend" in out
    return "%s %s %s %s, %d session ticket%s%s" % (
        proto.group(1) if proto else "?", cipher.group(1) if cipher else "?",
        group.group(1).rstrip(",") if group else "?", sig.group(1) if sig else "?", tickets,
        "" if tickets == 1 else "s", "" if ok else ", NO RESPONSE")


# ---------------------------------------------------------------------------------------------
# Measurements

def cpu_ns(pids):
    """CPU time (ns) used so far by these processes, all threads (schedstat field 1)."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def cpu_ticks(pids):
    """(user, kernel) clock ticks used so far by these processes, all threads: only their
    ratio is used, to split the schedstat time into user space and kernel."""
    user = kernel = 0
    for pid in pids:
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                user += int(fields[11])
                kernel += int(fields[12])
        except OSError:
            pass
    return user, kernel


class CpuWindow:
    """The proxy's CPU time over a measured window: schedstat ns, split by tick counts."""

    def __init__(self, proxy):
        self.pids = proxy.pids()
        self.ns = cpu_ns(self.pids)
        self.ticks = cpu_ticks(self.pids)

    def per(self, count, r):
        used = cpu_ns(self.pids) - self.ns
        user, kernel = (b - a for a, b in zip(self.ticks, cpu_ticks(self.pids)))
        us = used / 1000.0 / max(count, 1)
        r["cpu_us_per_req"] = us
        r["cpu_user_us_per_req"] = us * user / (user + kernel) if user + kernel else None
        r["cpu_kernel_us_per_req"] = us * kernel / (user + kernel) if user + kernel else None
        return r


def parse_wrk(text):
    def latency(label):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
        if not m:
            return None
        v = float(m.group(1))
        return v / 1000.0 if m.group(2) == "us" else (v if m.group(2) == "ms" else v * 1000.0)

    requests = int(re.search(r"(\d+) requests in", text).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m.group(1))
    return {"requests": requests, "rps": rps, "p50": latency("50"), "p99": latency("99"),
            "errors": errors}


def run_wrk(proxy, path, seconds, connections, close=False):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds,
           "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(proxy.url(path))
    window = CpuWindow(proxy)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    r = parse_wrk(out)
    return window.per(r["requests"], r)


def h2load_fixed(proxy, n, clients=10, path="/small", headers=()):
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "--h1", "-n", str(n), "-c", str(clients)]
    if proxy.tls:  # the suite wrk and the handshake client negotiate (OpenSSL's first choice)
        cmd.append("--tls13-ciphers=TLS_AES_256_GCM_SHA384")
    for h in headers:
        cmd += ["-H", h]
    cmd.append(proxy.url(path))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    if not m or int(m.group(4)) != n:
        raise RuntimeError("h2load did not complete %d requests:\n%s" % (n, out[-2000:]))


HANDSHAKE_REQUEST = b"GET /small HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def client_tls_context():
    """TLS 1.3 with OpenSSL's default suites and groups (TLS_AES_256_GCM_SHA384, X25519), no
    certificate check (as wrk and h2load), and no session ever offered for resumption: Python
    resumes only a session handed to wrap_socket, which this never does."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def handshake_once(ctx, port):
    """One new connection, full handshake, one request; (ok, resumed)."""
    with socket.create_connection((HOST, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="bench.test") as s:
            s.sendall(HANDSHAKE_REQUEST)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            ok = data.startswith(b"HTTP/1.1 200") and b"hello from the backend" in data
            return ok, s.session_reused


def handshakes(proxy, n):
    """n full handshakes, one after the other; raises on any failure or resumption."""
    ctx = client_tls_context()
    for _ in range(n):
        ok, resumed = handshake_once(ctx, proxy.port)
        if not ok or resumed:
            raise RuntimeError("%s: handshake failed or was resumed" % proxy.label)


def _handshake_client(port, seconds, conn):
    """A load-generator process on the load core: new connections until the deadline."""
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    ctx = client_tls_context()
    done = errors = resumed = 0
    latencies = []
    t0 = time.monotonic()
    deadline = t0 + seconds
    while True:
        t = time.monotonic()
        if t >= deadline:
            break
        try:
            ok, reused = handshake_once(ctx, port)
        except (OSError, ssl.SSLError):
            ok, reused = False, False
        latencies.append(time.monotonic() - t)
        done += 1
        errors += not ok
        resumed += bool(reused)
    conn.send((done, errors, resumed, latencies))
    conn.close()


def run_handshakes(proxy, seconds, clients=HANDSHAKE_CLIENTS):
    """Full TLS handshakes per second (each with one proxied request) from `clients`
    closed-loop client processes, and the proxy's CPU time per handshake."""
    mp = multiprocessing.get_context("fork")
    window = CpuWindow(proxy)
    t0 = time.monotonic()
    procs = []
    for _ in range(clients):
        rx, tx = mp.Pipe(duplex=False)
        p = mp.Process(target=_handshake_client, args=(proxy.port, seconds, tx))
        p.start()
        tx.close()
        procs.append((p, rx))
    done = errors = resumed = 0
    latencies = []
    for p, rx in procs:
        d, e, r, lat = rx.recv()
        p.join(timeout=30)
        done += d
        errors += e
        resumed += r
        latencies += lat
    elapsed = time.monotonic() - t0
    latencies.sort()

    def pct(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000.0 \
            if latencies else None

    return window.per(done, {"requests": done, "rps": done / elapsed, "p50": pct(0.50),
                             "p99": pct(0.99), "errors": errors, "resumed": resumed})


def callgrind_count(proxy, tag, warm_up, measured, every_process=False):
    """User-space instructions the proxy executes while measured() runs: callgrind with
    instrumentation off during start-up and warm_up(), on for measured() alone. With
    every_process, callgrind follows children (--trace-children=yes, one output per process)
    and counts in every process of the proxy."""
    out = os.path.join(proxy.dir, "callgrind-%s.out" % tag)
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               "--callgrind-out-file=" + out + (".%p" if every_process else "")]
    if every_process:
        wrapper.insert(2, "--trace-children=yes")
    proxy.start(wrapper=wrapper)
    try:
        warm_up()  # pools filled, paths touched
        pid = proxy.worker_pids()[0]
        # valgrind's pid is the proxy's pid (it execs in place); workers are children.
        targets = [str(proxy.proc.pid if proxy.name != "nginx" else pid)]
        if every_process:
            targets = [str(p) for p in proxy.pids()]
        for target in targets:
            subprocess.run(["callgrind_control", "-i", "on", target], capture_output=True,
                           timeout=60, check=True)
        measured()
        for target in targets:
            subprocess.run(["callgrind_control", "-i", "off", target], capture_output=True,
                           timeout=60, check=True)
            subprocess.run(["callgrind_control", "-d", target], capture_output=True,
                           timeout=60)
        time.sleep(0.5)
    finally:
        proxy.stop()
    # Instrumentation was on only while measured() ran: the dump holds exactly that.
    total = 0
    for name in sorted(os.listdir(proxy.dir)):
        if name.startswith(os.path.basename(out)):
            path = os.path.join(proxy.dir, name)
            with open(path) as f:
                n = sum(int(line.split()[1]) for line in f if line.startswith("totals:"))
            total += n
            if n and PROFILE_DIR:  # kept for callgrind_annotate
                os.makedirs(PROFILE_DIR, exist_ok=True)
                shutil.copy(path, os.path.join(PROFILE_DIR, "%s%s-%s.callgrind" % (
                    proxy.name, "-tls" if proxy.tls else "", tag)))
    return total


def instructions_per_request(proxy, n, headers=(), tag="keepalive"):
    """User-space instructions per keep-alive request (h2load: 10 connections, n requests).
    Over TLS, the 10 connections are made and their handshakes done before counting starts
    (a client here, as h2load cannot): the row counts keep-alive requests only, and the
    handshake row counts handshakes."""
    if proxy.tls:
        clients = []

        def warm_up():
            h2load_fixed(proxy, 500, headers=headers)
            clients.extend(KeepAliveClient(proxy) for _ in range(10))
            run_keepalive(clients, 10 * len(clients))

        try:
            return callgrind_count(proxy, tag, warm_up, lambda: run_keepalive(clients, n)) / n
        finally:
            for c in clients:
                c.close()
    return callgrind_count(proxy, tag, lambda: h2load_fixed(proxy, 500, headers=headers),
                           lambda: h2load_fixed(proxy, n, headers=headers)) / n


class KeepAliveClient:
    """One TLS keep-alive connection sending h2load's request, reading whole responses."""

    def __init__(self, proxy):
        raw = socket.create_connection((HOST, proxy.port), timeout=120)
        self.s = client_tls_context().wrap_socket(raw, server_hostname="bench.test") \
            if proxy.tls else raw
        self.request = ("GET /small HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: h2load "
                        "nghttp2/1.52.0\r\n\r\n" % (HOST, proxy.port)).encode()
        self.buf = b""

    def exchange(self):
        self.s.sendall(self.request)
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not head.startswith(b"HTTP/1.1 200") or not m:
            raise RuntimeError("unexpected response: %r" % head[:200])
        size = int(m.group(1))
        while len(self.buf) < size:
            self._recv()
        self.buf = self.buf[size:]

    def _recv(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        self.buf += chunk

    def close(self):
        self.s.close()


def run_keepalive(clients, n):
    """n requests spread over the clients, each on its own thread (as h2load's clients)."""
    import threading
    errors = []

    def work(c, count):
        try:
            for _ in range(count):
                c.exchange()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(c, n // len(clients) +
                                                   (i < n % len(clients))))
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("keep-alive client: %s" % errors[0])


def instructions_per_handshake(proxy, n):
    """User-space instructions per new TLS connection: a full handshake and one proxied
    request (Connection: close), n of them one after the other."""
    def warm_up():
        h2load_fixed(proxy, 500)
        handshakes(proxy, 20)
    return callgrind_count(proxy, "handshake", warm_up, lambda: handshakes(proxy, n)) / n


def syscalls_per_request(proxy, n):
    proxy.start()
    try:
        h2load_fixed(proxy, 500)
        stat = os.path.join(proxy.dir, "strace.txt")
        args = ["strace", "-c", "-f", "-o", stat]
        for pid in proxy.worker_pids():
            args += ["-p", str(pid)]
        tracer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(tracer)
        time.sleep(1.0)
        h2load_fixed(proxy, n)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    finally:
        proxy.stop()
    calls = 0
    with open(stat) as f:
        for line in f:
            if line.strip().endswith("total"):
                parts = line.split()
                calls = int(parts[3]) if len(parts) >= 5 else int(parts[2])
    return calls / n


def instructions_per_mib(proxy, mib):
    """User-space instructions per relayed MiB: `mib` requests for /big (1 MiB) through the
    relay, on 10 keep-alive connections."""
    return callgrind_count(proxy, "tcp", lambda: h2load_fixed(proxy, 20, path="/big"),
                           lambda: h2load_fixed(proxy, mib, path="/big")) / mib


def syscalls_per_mib(proxy, mib):
    proxy.start()
    try:
        h2load_fixed(proxy, 20, path="/big")
        stat = os.path.join(proxy.dir, "strace-tcp.txt")
        args = ["strace", "-c", "-f", "-o", stat]
        for pid in proxy.worker_pids():
            args += ["-p", str(pid)]
        tracer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(tracer)
        time.sleep(1.0)
        h2load_fixed(proxy, mib, path="/big")
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    finally:
        proxy.stop()
    calls = 0
    with open(stat) as f:
        for line in f:
            if line.strip().endswith("total"):
                parts = line.split()
                calls = int(parts[3]) if len(parts) >= 5 else int(parts[2])
    return calls / mib


def idle_rss_kib(proxy, count):
    """RSS of a freshly started proxy holding `count` idle keep-alive client connections,
    each of which has made one request."""
    proxy.start()
    socks = []
    try:
        request = b"GET /small HTTP/1.1\r\nHost: bench\r\n\r\n"
        for _ in range(count):
            s = socket.create_connection((HOST, proxy.port), timeout=10)
            s.sendall(request)
            socks.append(s)
        for s in socks:  # read each response head and body (small, one recv is plenty)
            data = b""
            while b"hello from the backend" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("%s closed an idle connection" % proxy.name)
                data += chunk
        time.sleep(1.0)
        total = 0
        for pid in proxy.pids():
            with open("/proc/%d/status" % pid) as f:
                m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
                total += int(m.group(1)) if m else 0
        return total
    finally:
        for s in socks:
            s.close()
        proxy.stop()


# Plugin configurations for the cost rows: [[plugin]] entries and the location's tables.
def plugin_setups():
    noop = os.path.join(BUILD, "test-plugins", "noop.so")
    six = "".join('[[plugin]]\nname = "noop%d"\npath = "%s"\n' % (i, noop) for i in range(6))
    six += "".join("[server.location.plugins.noop%d]\n" % i for i in range(6))
    return [
        ("none", ""),
        ("6 no-op plugins (every phase)", six),
        ("header_rewrite (2 set, 1 remove, response set)",
         '[[plugin]]\nname = "header_rewrite"\n[server.location.plugins.header_rewrite]\n'
         'request_set = { X-Client = "$remote_addr", X-Source = "torii" }\n'
         'request_remove = ["X-Internal"]\nresponse_set = { Cache-Control = "no-store" }\n'),
        ("ratelimit (local, key $remote_addr)",
         '[[plugin]]\nname = "ratelimit"\n[server.location.plugins.ratelimit]\n'
         'rate = 1000000\nburst = 1000000\nkey = "$remote_addr"\n'),
        ("circuit_breaker (route)",
         '[[plugin]]\nname = "circuit_breaker"\n[server.location.plugins.circuit_breaker]\n'),
        ("auth (key in a header)",
         '[[plugin]]\nname = "auth"\n[server.location.plugins.auth]\ntype = "key"\n'
         'keys = [ { key = "bench-key", consumer = "bench" } ]\n'),
        ("stats", '[[plugin]]\nname = "stats"\n[server.location.plugins.stats]\n'),
    ]


def plugin_costs(work, backend, n):
    rows = []
    for i, (label, extra) in enumerate(plugin_setups()):
        t = Torii(work, backend)
        t.extra = extra
        try:
            v = instructions_per_request(t, n, headers=["X-API-Key: bench-key"],
                                         tag="plugins-%d" % i)
        except Exception as e:
            log("plugin cost %s failed: %s" % (label, e))
            v = None
        log("%-48s %s instructions/req" % (label, fmt(v)))
        rows.append((label, v))
    return rows


# ---------------------------------------------------------------------------------------------
# HTTP/2 rows (h2-tls, h2-tls-instructions, h2c-upstream): classes and functions of their own,
# so that the HTTP/1.1 configurations above stay as they are. Each proxy gets an HTTP/2 twin
# of its configuration; h2o (2.2, Debian) joins as a fourth peer.

H2_ROWS = ["h2-tls", "h2-tls-instructions", "h2c-upstream"]
H2_CLIENTS = 4          # h2load connections
H2_TLS_STREAMS = 32     # h2-tls: -c 4 -m 32, 128 streams in flight
H2C_STREAMS = 64        # h2c-upstream: -c 4 -m 64, 256 streams in flight
H2C_BACKEND_MAX_STREAMS = 128  # the h2c backend's http2_max_concurrent_streams (nginx's default)
# Idle upstream connections kept by torii and nginx (keepalive): their HTTP/1.1 rows use 64 for
# 50 client connections; with 128 or 256 streams in flight, 64 would close and reopen upstream
# connections all the time (HAProxy and h2o keep every idle one by default).
H2_UPSTREAM_KEEPALIVE = 256


class H2cBackend:
    """An nginx speaking cleartext HTTP/2 with prior knowledge (`listen ... http2` without ssl),
    serving the same /small as Backend, on the load core."""

    def __init__(self, work):
        self.port = free_port()
        self.dir = os.path.join(work, "backend-h2c")
        os.makedirs(self.dir, mode=0o755)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;  # also the requests per HTTP/2 connection (nginx >= 1.19.7)
    keepalive_timeout 300s;
    http2_max_concurrent_streams %(ms)d;
    server {
        listen %(h)s:%(p)d http2 backlog=4096;
        location = /small { return 200 "hello from the backend\\n"; }
    }
}
""" % {"d": self.dir, "h": HOST, "p": self.port, "ms": H2C_BACKEND_MAX_STREAMS})
        self.proc = start(["nginx", "-c", conf, "-p", self.dir], LOAD_CPU)
        wait_port(self.port)


class H2Proxy(Proxy):
    """A proxy in one of the HTTP/2 modes:
    - "h2-tls": a TLS listener offering h2 (and http/1.1) by ALPN, HTTP/1.1 keep-alive upstream
      (Backend), as the TLS rows;
    - "h2c-upstream": a cleartext listener taking HTTP/2 with prior knowledge, cleartext HTTP/2
      to H2cBackend."""

    supports = ("h2-tls", "h2c-upstream")

    def __init__(self, work, backend, mode, tls=None):
        self.mode = mode
        super().__init__(work, backend, tls=tls)

    @property
    def label(self):
        return "%s (%s)" % (self.name, self.mode)


class ToriiH2(H2Proxy):
    name = "torii"

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "torii.toml")
        with open(conf, "w") as f:
            f.write("""
[main]
workers = 1
master_process = %(master)s
error_log = "%(d)s/error.log"
access_log = "off"
log_level = "warn"
plugin_dir = "%(plugins)s"

[upstream.backend]
targets = [ { address = "%(h)s:%(bp)d" } ]
keepalive = %(ka)d
%(proto)s
[[server]]
listen = ["%(h)s:%(p)d"]
client_max_body_size = "8m"
%(tls)s
[[server.location]]
path = "/"
upstream = "backend"
""" % {"d": self.dir, "h": HOST, "p": self.port, "bp": self.backend.port,
       "master": "false" if single_process else "true",
       "proto": 'protocol = "h2c"\n' if self.mode == "h2c-upstream" else "",
       "ka": H2_UPSTREAM_KEEPALIVE,
       "plugins": os.path.join(BUILD, "plugins"),
       "tls": 'tls = { cert = "%s", key = "%s", alpn = ["h2", "http/1.1"] }\n' % (
           self.tls.cert, self.tls.key) if self.tls else ""})
        return [os.path.join(BUILD, "torii"), "-c", conf]


class NginxH2(H2Proxy):
    name = "nginx"

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "nginx.conf")
        if self.mode == "h2c-upstream":
            # grpc_pass speaks HTTP/2 to the upstream for any request (not only gRPC); nginx
            # does not multiplex: one stream per upstream connection, kept alive.
            upstream = "grpc://backend"
            fwd = "grpc_set_header"
            extra = ""
        else:
            upstream = "http://backend"
            fwd = "proxy_set_header"
            extra = """            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_max_temp_file_size 0;
"""
        with open(conf, "w") as f:
            f.write("""
worker_processes 1;
daemon off;
master_process %(master)s;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 20000; }
http {
    access_log off;
    keepalive_requests 1000000;
    upstream backend { server %(h)s:%(bp)d; keepalive %(ka)d; }
    server {
        listen %(h)s:%(p)d backlog=4096%(ssl)s http2;
%(tls)s        location / {
            %(pass)s %(up)s;
            %(fwd)s Host $host;
            %(fwd)s X-Forwarded-For $proxy_add_x_forwarded_for;
            %(fwd)s X-Real-IP $remote_addr;
            %(fwd)s X-Forwarded-Proto $scheme;
%(extra)s        }
    }
}
""" % {"d": self.dir, "h": HOST, "p": self.port, "bp": self.backend.port,
       "master": "off" if single_process else "on", "ssl": " ssl" if self.tls else "",
       "pass": "grpc_pass" if self.mode == "h2c-upstream" else "proxy_pass",
       "up": upstream, "fwd": fwd, "extra": extra,
       "ka": H2_UPSTREAM_KEEPALIVE,
       "tls": ("        ssl_certificate %s;\n        ssl_certificate_key %s;\n"
               "        ssl_protocols TLSv1.2 TLSv1.3;\n" % (self.tls.cert, self.tls.key))
              if self.tls else ""})
        return ["nginx", "-c", conf, "-p", self.dir]


class HaproxyH2(H2Proxy):
    name = "haproxy"

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write("""
global
    maxconn %(maxconn)d
    nbthread 1
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    http-reuse always
    option forwardfor
frontend f
    bind %(h)s:%(p)d%(bind)s
    http-request set-header X-Real-IP %%[src]
    http-request set-header X-Forwarded-Proto %(scheme)s
    default_backend b
backend b
    server s1 %(h)s:%(bp)d%(server)s
""" % {"h": HOST, "p": self.port, "bp": self.backend.port, "maxconn": Haproxy.maxconn(),
       "bind": (" ssl crt %s alpn h2,http/1.1 ssl-min-ver TLSv1.2" % self.tls.combined)
               if self.tls else " proto h2",
       "server": " proto h2" if self.mode == "h2c-upstream" else "",
       "scheme": "https" if self.tls else "http"})
        return ["haproxy", "-db", "-f", conf]


class H2o(H2Proxy):
    """h2o 2.2: one worker thread (num-threads: 1; the whole process is pinned as the others),
    the private key in-process (Debian's build has no neverbleed), HTTP/1.1
    keep-alive to the backend (proxy.timeout.keepalive), X-Forwarded-For and
    X-Forwarded-Proto emitted (its default; 2.2 cannot set X-Real-IP from a variable without
    mruby). h2o 2.2 speaks only HTTP/1.1 to upstreams: no h2c-upstream mode."""

    name = "h2o"
    supports = ("h2-tls",)

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "h2o.conf")
        ssl_conf = ""
        if self.tls:
            ssl_conf = """  ssl:
    certificate-file: %s
    key-file: %s
    minimum-version: TLSv1.2
    ocsp-update-interval: 0
""" % (self.tls.cert, self.tls.key)
        with open(conf, "w") as f:
            f.write("""
num-threads: 1
user: root  # as root without it, h2o switches to nobody
error-log: %(d)s/error.log
max-connections: 20000
listen:
  host: %(h)s
  port: %(p)d
%(ssl)shosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://%(h)s:%(bp)d/
        proxy.preserve-host: ON
        proxy.timeout.keepalive: 300000
""" % {"d": self.dir, "h": HOST, "p": self.port, "bp": self.backend.port,
       "ssl": ssl_conf})
        return ["h2o", "-m", "worker", "-c", conf]


H2_KINDS = [ToriiH2, NginxH2, HaproxyH2, H2o]


def h2_tls_parameters(proxy):
    """ALPN, protocol and cipher one handshake with the proxy negotiates (openssl s_client
    offering h2 only)."""
    r = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (HOST, proxy.port),
                        "-servername", "bench.test", "-alpn", "h2"],
                       input=b"", capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    alpn = re.search(r"ALPN protocol: (\S+)", out)
    proto = re.search(r"Protocol\s*:\s*(\S+)", out) or re.search(r"New, (TLSv[\d.]+)", out)
    cipher = re.search(r"Cipher is (\S+)", out)
    return "ALPN %s, %s %s" % (alpn.group(1) if alpn else "none",
                               proto.group(1) if proto else "?",
                               cipher.group(1) if cipher else "?")


def _h2load_cmd(proxy, streams, path="/small"):
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "-t", "1", "-c", str(H2_CLIENTS),
           "-m", str(streams)]
    if proxy.tls:  # as the TLS rows: TLS 1.3 with TLS_AES_256_GCM_SHA384; ALPN h2 (its default)
        cmd.append("--tls13-ciphers=TLS_AES_256_GCM_SHA384")
    return cmd


def _parse_h2load(out):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if not m:
        raise RuntimeError("h2load output not understood:\n%s" % out[-2000:])
    total, _, done, ok, failed, errored, timeout = (int(x) for x in m.groups())
    proto = re.search(r"Application protocol: (\S+)", out)
    if not proto or proto.group(1) not in ("h2", "h2c"):
        raise RuntimeError("h2load did not speak HTTP/2:\n%s" % out[-2000:])
    rps = re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\s", out)
    mean_ms = None
    if mean:
        v = float(mean.group(1))
        mean_ms = {"us": v / 1000.0, "ms": v, "s": v * 1000.0}[mean.group(2)]
    codes = re.search(r"status codes: \d+ 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    errors = failed + errored + timeout + (sum(int(x) for x in codes.groups()) if codes else 0)
    return {"requests": ok, "rps": float(rps.group(1)) if rps else None, "mean": mean_ms,
            "errors": errors, "done": done, "total": total}


class UpstreamConnSampler:
    """Counts ESTABLISHED TCP connections to a port (`ss -tn`, the proxy's side: destination
    port) every `interval` seconds on a thread: the most seen at once, and how many distinct
    ones (by local port) were seen in all."""

    def __init__(self, port, interval=0.25):
        import threading
        self.port = port
        self.interval = interval
        self.max = 0
        self.samples = []
        self.seen = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self):
        while not self._stop.is_set():
            r = subprocess.run(["taskset", "-c", LOAD_CPU, "ss", "-Htn", "state", "established",
                                "( dport = :%d )" % self.port],
                               capture_output=True, text=True, timeout=10)
            conns = [line.split()[2] for line in r.stdout.splitlines() if line.strip()]
            # columns without the state column: Recv-Q Send-Q Local Peer
            self.samples.append(len(conns))
            self.max = max(self.max, len(conns))
            self.seen.update(conns)
            self._stop.wait(self.interval)


def run_h2load(proxy, seconds, streams, upstream_port=None):
    """h2load for `seconds` (-c 4 -m streams, /small) against the proxy; req/s, mean request
    time, the proxy's CPU per request; with upstream_port, the upstream connections seen."""
    cmd = _h2load_cmd(proxy, streams) + ["-D", str(seconds), proxy.url("/small")]
    window = CpuWindow(proxy)
    if upstream_port:
        with UpstreamConnSampler(upstream_port) as sampler:
            out = subprocess.run(cmd, capture_output=True, text=True,
                                 timeout=seconds + 60).stdout
    else:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    parsed = _parse_h2load(out)
    r = window.per(parsed["requests"], parsed)
    if upstream_port:
        busy = sorted(sampler.samples[2:-2] or sampler.samples)  # without ramp-up and end
        r["upstream_max"] = sampler.max
        r["upstream_median"] = statistics.median(busy) if busy else None
        r["upstream_distinct"] = len(sampler.seen)
    return r


def h2load_count(proxy, n, streams):
    cmd = _h2load_cmd(proxy, streams) + ["-n", str(n), proxy.url("/small")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    r = _parse_h2load(out)
    if r["requests"] != n or r["errors"]:
        raise RuntimeError("h2load did not complete %d requests:\n%s" % (n, out[-2000:]))
    time.sleep(1.0)  # the proxy sees the connections close before counting stops


def h2_instructions_per_request(proxy, n, streams):
    """User-space instructions per request over HTTP/2 (callgrind), handshakes and connection
    set-up excluded by difference: two counted h2load runs against the same warmed-up proxy
    configuration, each with its own 4 new connections (TLS: full handshakes), of n/5 and
    n/5 + n requests; (count(long) - count(short)) / n. Also returns the plain average of
    the long run (handshakes amortised over its requests)."""
    short, long_ = max(n // 5, H2_CLIENTS * streams), n + max(n // 5, H2_CLIENTS * streams)

    def count(k, tag):
        return callgrind_count(proxy, tag, lambda: h2load_count(proxy, 1000, streams),
                               lambda: h2load_count(proxy, k, streams))

    a = count(short, "%s-short" % proxy.mode)
    b = count(long_, "%s-long" % proxy.mode)
    return (b - a) / float(long_ - short), b / float(long_)


def h2_rows(args, work, backend, rows_wanted):
    """Runs the HTTP/2 rows that are wanted; returns (table lines, notes)."""
    wanted = [r for r in H2_ROWS if r in rows_wanted]
    if not wanted:
        return [], []
    kinds = H2_KINDS
    if args.only:
        kinds = [k for k in kinds if k.name in args.only.split(",")]
    names = [k.name for k in kinds]
    rows = []  # (scenario, metric, {name: value})
    notes = []
    h2dir = os.path.join(work, "h2")
    os.makedirs(h2dir, mode=0o755, exist_ok=True)
    tls_proxies = []
    if any(r.startswith("h2-tls") for r in wanted):
        cert = Cert(h2dir)
        tls_proxies = [k(work, backend, "h2-tls", tls=cert) for k in kinds]
        for p in tls_proxies:
            p.start()
            try:
                notes.append("%s: %s" % (p.name, h2_tls_parameters(p)))
            finally:
                p.stop()
            log("HTTP/2 TLS", notes[-1])
    h2c_proxies = []
    if "h2c-upstream" in wanted:
        h2c_backend = H2cBackend(work)
        h2c_proxies = [k(work, h2c_backend, "h2c-upstream") for k in kinds
                       if "h2c-upstream" in k.supports]

    def timed(scenario, group, streams, upstream_port=None):
        results = {p.name: [] for p in group}
        for rnd in range(args.rounds):
            order = group[rnd % len(group):] + group[:rnd % len(group)]
            for p in order:
                p.start()
                try:
                    run_h2load(p, 1, streams)  # warm-up
                    r = run_h2load(p, args.seconds, streams, upstream_port)
                finally:
                    p.stop()
                log("round %d  %-28s %-8s %9.0f req/s  mean %6.2f ms  %6.1f us/req  errors %d%s"
                    % (rnd + 1, scenario, p.name, r["rps"] or 0, r["mean"] or 0,
                       r["cpu_us_per_req"], r["errors"],
                       "  upstream conns max %d median %s distinct %d" % (
                           r["upstream_max"], r["upstream_median"], r["upstream_distinct"])
                       if upstream_port else ""))
                results[p.name].append(r)
        metrics = [("req/s", "rps"), ("mean request ms", "mean"),
                   ("proxy CPU us/req", "cpu_us_per_req"),
                   ("of which user space", "cpu_user_us_per_req"),
                   ("of which kernel", "cpu_kernel_us_per_req"), ("errors", "errors")]
        if upstream_port:
            metrics += [("upstream conns, most at once", "upstream_max"),
                        ("upstream conns, distinct", "upstream_distinct")]
        for metric, k in metrics:
            vals = {}
            for p in group:
                xs = [r[k] for r in results[p.name] if r.get(k) is not None]
                vals[p.name] = statistics.median(xs) if xs else None
            rows.append((scenario, metric, vals))
        cpu = {p.name: ", ".join(fmt(r["cpu_us_per_req"]) for r in results[p.name])
               for p in group}
        notes.append("%s, proxy CPU us/req per round: %s" % (
            scenario, "; ".join("%s %s" % kv for kv in cpu.items())))

    def counted(scenario, group, streams):
        vals, amortised = {}, {}
        for p in group:
            try:
                vals[p.name], amortised[p.name] = h2_instructions_per_request(
                    p, args.fixed, streams)
            except Exception as e:
                log("%s instructions failed: %s" % (p.label, e))
                vals[p.name] = amortised[p.name] = None
            log("%-34s %-24s %s (handshakes amortised: %s)" % (
                "instructions/req", p.label, fmt(vals[p.name]), fmt(amortised[p.name])))
        rows.append((scenario, "instructions/req (callgrind, connections excluded)", vals))
        rows.append((scenario, "instructions/req, %d connections' set-up amortised" %
                     H2_CLIENTS, amortised))

    tls_scn = "HTTP/2 over TLS, h2load -c %d -m %d" % (H2_CLIENTS, H2_TLS_STREAMS)
    h2c_scn = "h2c client -> h2c upstream, h2load -c %d -m %d" % (H2_CLIENTS, H2C_STREAMS)
    if "h2-tls" in wanted:
        timed(tls_scn, tls_proxies, H2_TLS_STREAMS, upstream_port=backend.port)
    if "h2-tls-instructions" in wanted:
        counted(tls_scn, tls_proxies, H2_TLS_STREAMS)
    if "h2c-upstream" in wanted:
        timed(h2c_scn, h2c_proxies, H2C_STREAMS, upstream_port=h2c_backend.port)
        counted(h2c_scn, h2c_proxies, H2C_STREAMS)
        streams = H2_CLIENTS * H2C_STREAMS
        notes.append("h2c upstream: %d streams in flight, backend SETTINGS_MAX_CONCURRENT_STREAMS "
                     "%d: at most ceil(%d / %d) = %d connections per target allowed" % (
                         streams, H2C_BACKEND_MAX_STREAMS, streams, H2C_BACKEND_MAX_STREAMS,
                         -(-streams // H2C_BACKEND_MAX_STREAMS)))
    lines = ["| scenario | metric | " + " | ".join(names) + " | torii/h2o | torii/haproxy |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for scenario, metric, vals in rows:
        lines.append("| %s | %s | %s | %s | %s |" % (
            scenario, metric, " | ".join(fmt(vals[n]) if n in vals else "n/a" for n in names),
            ratio(vals.get("torii"), vals.get("h2o")),
            ratio(vals.get("torii"), vals.get("haproxy"))))
    return lines, notes


# ---------------------------------------------------------------------------------------------

def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return ("%%.%df" % digits) % v


def ratio(a, b):
    return "n/a" if a is None or not b else "%.2f" % (a / b)


# Rows --rows can pick; all of them by default.
ROWS = ["keepalive", "close", "big", "tls-keepalive", "tls-handshake", "instructions",
        "syscalls", "rss", "tls-instructions", "tls-handshake-instructions", "websocket",
        "plugins", "tcp", "tcp-instructions", "tcp-syscalls", "gateway-chain",
        "connection-instructions", "idle-rss-per-conn",  # connection_rows.py
        "latency-p99",  # latency_row.py
        "tls-syscalls"]
DEFAULT_ROWS = ROWS[:-1]  # tls-syscalls only when asked (the run's time budget)
ROWS = ROWS + H2_ROWS  # the HTTP/2 rows: h2_rows()
DEFAULT_ROWS = DEFAULT_ROWS + H2_ROWS

# Timed scenarios: (row key, scenario, path, connections, Connection: close, over TLS,
# TCP relay)
TCP_SCENARIO = "TCP relay, 1 MiB responses"
SCENARIOS = [
    ("keepalive", "keep-alive, small response", "/small", 50, False, False, False),
    ("close", "new connection per request", "/small", 50, True, False, False),
    ("big", "1 MiB responses", "/big", 10, False, False, False),
    ("tls-keepalive", "TLS keep-alive, small response", "/small", 50, False, True, False),
    ("tls-handshake", "TLS new connection per request (full handshake)", "/small",
     HANDSHAKE_CLIENTS, True, True, False),
    ("tcp", TCP_SCENARIO, "/big", 10, False, False, True),
]


def main():
    global BUILD, PROFILE_DIR
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--seconds", type=int, default=5, help="per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the RSS row")
    ap.add_argument("--fixed", type=int, default=5000, help="requests for callgrind/strace")
    ap.add_argument("--handshake-seconds", type=int, default=3,
                    help="per run of the full-handshake row (CPU per handshake is its measure)")
    ap.add_argument("--handshakes", type=int, default=100,
                    help="full handshakes for the callgrind handshake row")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"))
    ap.add_argument("--only", default="", help="comma-separated proxies to run")
    ap.add_argument("--rows", default="",
                    help="comma-separated rows to run (default all but tls-syscalls): " +
                    ",".join(ROWS))
    ap.add_argument("--profile-dir", default="",
                    help="keep each callgrind output there (for callgrind_annotate)")
    ap.add_argument("--tcp-mib", type=int, default=300,
                    help="MiB relayed for the TCP callgrind/strace rows")
    ap.add_argument("--connections", type=int, default=2000,
                    help="new connections for the connection-instructions row")
    ap.add_argument("--latency-seconds", type=int, default=6,
                    help="measured seconds per proxy and round of the latency-p99 row "
                    "(open loop, torii_loadgen)")
    ap.add_argument("--no-plugin-costs", dest="plugin_costs", action="store_false",
                    help="skip the per-plugin instruction counts")
    args = ap.parse_args()
    BUILD = os.path.abspath(args.build)
    PROFILE_DIR = os.path.abspath(args.profile_dir) if args.profile_dir else None
    rows_wanted = args.rows.split(",") if args.rows else list(DEFAULT_ROWS)
    for r in rows_wanted:
        if r not in ROWS:
            ap.error("unknown row %r (rows: %s)" % (r, ",".join(ROWS)))
    if not args.plugin_costs and "plugins" in rows_wanted:
        rows_wanted.remove("plugins")

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:  # root may raise the hard limit; the proxies inherit it
        resource.setrlimit(resource.RLIMIT_NOFILE, (65536, max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    work = tempfile.mkdtemp(prefix="torii-bench-")
    os.chmod(work, 0o755)  # nginx workers drop root and must read the backend's files
    rows = []  # (scenario, metric, {proxy: value}, lower_is_better)
    plugin_rows = []
    tls_notes = []
    h2_lines, h2_notes = [], []
    conn_lines, conn_notes = [], []
    lat_lines, lat_notes = [], []
    t_start = time.monotonic()
    try:
        backend = Backend(work)
        kinds = [Torii, Nginx, Haproxy]
        if args.only:
            kinds = [k for k in kinds if k.name in args.only.split(",")]
        proxies = [k(work, backend) for k in kinds]
        tcp_proxies = []
        if any(r.startswith("tcp") for r in rows_wanted):
            tcp_proxies = [k(work, backend, tcp=True) for k in kinds]
        tls_proxies = []
        if any(r.startswith("tls-") for r in rows_wanted):
            cert = Cert(work)
            tls_proxies = [k(work, backend, tls=cert) for k in kinds]
            for p in tls_proxies:  # what each negotiates, printed with the table
                p.start()
                try:
                    tls_notes.append("%s: %s" % (p.name, tls_parameters(p)))
                finally:
                    p.stop()
                log("TLS", tls_notes[-1])

        scenarios = [s for s in SCENARIOS if s[0] in rows_wanted]
        results = {s[1]: {p.name: [] for p in proxies} for s in scenarios}
        for rnd in range(args.rounds):
            for key, scenario, path, conns, close, tls, tcp in scenarios:
                group = tcp_proxies if tcp else tls_proxies if tls else proxies
                order = group[rnd % len(group):] + group[:rnd % len(group)]
                for p in order:
                    p.start()
                    try:
                        if key == "tls-handshake":
                            run_handshakes(p, 0.5)  # warm-up
                            r = run_handshakes(p, args.handshake_seconds)
                        else:
                            run_wrk(p, path, 1, conns, close)  # warm-up
                            r = run_wrk(p, path, args.seconds, conns, close)
                    finally:
                        p.stop()
                    log("round %d  %-28s %-8s %9.0f req/s  p99 %7.2f ms  %6.1f us/req  errors %d"
                        % (rnd + 1, scenario, p.name, r["rps"], r["p99"] or 0,
                           r["cpu_us_per_req"], r["errors"]))
                    if r.get("resumed"):
                        raise RuntimeError("%s resumed %d sessions in the full-handshake row"
                                           % (p.label, r["resumed"]))
                    results[scenario][p.name].append(r)

        for key, scenario, *_ in scenarios:
            unit = "handshake" if key == "tls-handshake" else "MiB" if key == "tcp" else "req"
            metrics = [("handshakes/s" if key == "tls-handshake" else "req/s", "rps", False),
                       ("p50 ms", "p50", True), ("p99 ms", "p99", True),
                       ("proxy CPU us/%s" % unit, "cpu_us_per_req", True),
                       ("of which user space", "cpu_user_us_per_req", True),
                       ("of which kernel", "cpu_kernel_us_per_req", True),
                       ("errors", "errors", True)]
            for metric, k, lower in metrics:
                vals = {}
                for p in proxies:
                    xs = [r[k] for r in results[scenario][p.name] if r[k] is not None]
                    vals[p.name] = statistics.median(xs) if xs else None
                rows.append((scenario, metric, vals, lower))

        fixed = [
            ("instructions", "keep-alive, small response", "instructions/req (callgrind)",
             instructions_per_request, args.fixed, False),
            ("syscalls", "keep-alive, small response", "syscalls/req (strace -c)",
             syscalls_per_request, args.fixed, False),
            ("rss", "keep-alive, small response", "RSS KiB, %d idle conns" % args.idle,
             idle_rss_kib, args.idle, False),
            ("tls-instructions", "TLS keep-alive, small response",
             "instructions/req (callgrind)", instructions_per_request, args.fixed, True),
            ("tls-handshake-instructions", "TLS new connection per request (full handshake)",
             "instructions/handshake (callgrind)", instructions_per_handshake, args.handshakes,
             True),
            ("tls-syscalls", "TLS keep-alive, small response", "syscalls/req (strace -c)",
             syscalls_per_request, args.fixed, True),
            ("tcp-instructions", TCP_SCENARIO, "instructions/MiB (callgrind)",
             instructions_per_mib, args.tcp_mib, "tcp"),
            ("tcp-syscalls", TCP_SCENARIO, "syscalls/MiB (strace -c)", syscalls_per_mib,
             args.tcp_mib, "tcp"),
        ]
        for key, scenario, metric, fn, arg, tls in fixed:
            if key not in rows_wanted:
                continue
            vals = {}
            for p in (tcp_proxies if tls == "tcp" else tls_proxies if tls else proxies):
                try:
                    vals[p.name] = fn(p, arg)
                except Exception as e:
                    log("%s %s failed: %s" % (p.label, metric, e))
                    vals[p.name] = None
                log("%-34s %-14s %s" % (metric, p.label, fmt(vals[p.name])))
            rows.append((scenario, metric, vals, True))
        if "websocket" in rows_wanted:
            import websocket_row
            ws = websocket_row.run(proxies, work, rounds=args.rounds)
            for metric, k in (("proxy CPU us/MiB (each way)", "cpu_us_per_req"),
                              ("of which user space", "cpu_user_us_per_req"),
                              ("of which kernel", "cpu_kernel_us_per_req"),
                              ("MiB/s", "mib_per_s")):
                vals = {n: statistics.median(r[k] for r in rs) if rs else None
                        for n, rs in ws.items()}
                rows.append(("WebSocket echo, 64 KiB frames", metric, vals, k != "mib_per_s"))
        h2_lines, h2_notes = h2_rows(args, work, backend, rows_wanted)
        import connection_rows
        conn_lines, conn_notes = connection_rows.run(args, work, backend, rows_wanted)
        import latency_row
        lat_lines, lat_notes = latency_row.run(args, work, backend, rows_wanted)
        if "plugins" in rows_wanted and any(p.name == "torii" for p in proxies):
            plugin_rows = plugin_costs(work, backend, args.fixed)
    finally:
        stop_all()

    names = [p.name for p in proxies]
    lines = ["| scenario | metric | " + " | ".join(names) + " | torii/nginx | torii/haproxy |",
             "|---|---|" + "---|" * len(names) + "---|---|"] if rows else []
    for scenario, metric, vals, lower in rows:
        lines.append("| %s | %s | %s | %s | %s |" % (
            scenario, metric, " | ".join(fmt(vals.get(n)) for n in names),
            ratio(vals.get("torii"), vals.get("nginx")),
            ratio(vals.get("torii"), vals.get("haproxy"))))
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    command = ("bench/bench.py --seconds %d --rounds %d --idle %d --fixed %d "
               "--handshake-seconds %d --handshakes %d" % (
                   args.seconds, args.rounds, args.idle, args.fixed, args.handshake_seconds,
                   args.handshakes))
    if args.only:
        command += " --only " + args.only
    if args.rows:
        command += " --rows " + args.rows
    if any(r.startswith("tcp") for r in rows_wanted):
        command += " --tcp-mib %d" % args.tcp_mib
    if "connection-instructions" in rows_wanted:
        command += " --connections %d" % args.connections
    if "latency-p99" in rows_wanted:
        command += " --latency-seconds %d" % args.latency_seconds
    header = ["torii bench, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine: %d cores, %s" % (os.cpu_count(), model.group(1) if model else "?"),
              "command: " + command,
              "one worker each on core %s; wrk/h2load, the handshake clients and the backend "
              "(nginx) on core %s; medians of %d rounds; %.0f s in all" % (
                  PROXY_CPU, LOAD_CPU, args.rounds, time.monotonic() - t_start)]
    if tls_notes:
        header.append("TLS as negotiated (openssl s_client): " + "; ".join(tls_notes))
    header.append("")
    if plugin_rows:
        lines += ["", "Plugin cost: torii alone, user-space instructions per keep-alive request "
                  "(callgrind, %d requests) with each plugin enabled on the proxied location" %
                  args.fixed, "",
                  "| plugins enabled | instructions/req | added | vs none |", "|---|---|---|---|"]
        base = plugin_rows[0][1]
        for label, v in plugin_rows:
            lines.append("| %s | %s | %s | %s |" % (
                label, fmt(v), fmt(v - base) if v is not None and base else "n/a",
                ratio(v, base)))
    if conn_lines:
        lines += ["", "Connection cost and the gateway chain (torii, nginx, HAProxy and h2o; "
                  "--rows %s)" % ",".join(connection_rows.ROWS), ""] + conn_lines + \
            [""] + ["- " + n for n in conn_notes]
    if lat_lines:
        lines += ["", "Latency at 80% of nginx's bare maximum, open loop (torii_loadgen; "
                  "--rows latency-p99)", ""] + lat_lines + [""] + ["- " + n for n in lat_notes]
    if h2_lines:
        lines += ["", "HTTP/2 (torii, nginx, HAProxy and h2o; --rows %s)" % ",".join(H2_ROWS),
                  ""] + h2_lines + [""] + ["- " + n for n in h2_notes]
    text = "\n".join(header + lines) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(work, ignore_errors=True)


BUILD = None

if __name__ == "__main__":
    # The row modules (connection_rows, latency_row, websocket_row) `import bench`: let that be this
    # module, so that they share BUILD, PROFILE_DIR and the list of processes to stop.
    sys.modules.setdefault("bench", sys.modules[__name__])
    try:
        main()
    finally:
        stop_all()
