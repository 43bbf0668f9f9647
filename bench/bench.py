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

Everything listens on 127.0.0.1 and every process started here is stopped by its PID.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
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

    def __init__(self, work, backend):
        self.port = free_port()
        self.dir = os.path.join(work, "%s-%d" % (self.name, self.port))
        os.makedirs(self.dir)
        self.backend = backend
        self.proc = None

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

[[server.location]]
path = "/"
upstream = "backend"
%(extra)s
""" % {"extra": self.extra, "d": self.dir, "h": HOST, "p": self.port, "bp": self.backend.port,
       "plugins": os.path.join(BUILD, "plugins"),
       "master": "false" if single_process else "true"})
        return [os.path.join(BUILD, "torii"), "-c", conf]


class Nginx(Proxy):
    name = "nginx"

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "nginx.conf")
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
        listen %(h)s:%(p)d backlog=4096;
        location / {
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
       "master": "off" if single_process else "on"})
        return ["nginx", "-c", conf, "-p", self.dir]


class Haproxy(Proxy):
    name = "haproxy"

    def command(self, single_process=False):
        conf = os.path.join(self.dir, "haproxy.cfg")
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
    bind %(h)s:%(p)d
    http-request set-header X-Real-IP %%[src]
    http-request set-header X-Forwarded-Proto http
    default_backend b
backend b
    server s1 %(h)s:%(bp)d
""" % {"h": HOST, "p": self.port, "bp": self.backend.port, "maxconn": self.maxconn()})
        return ["haproxy", "-db", "-f", conf]

    @staticmethod
    def maxconn():
        import resource
        return min(30000, (resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 200) // 2)


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
    cmd.append("http://%s:%d%s" % (HOST, proxy.port, path))
    pids = proxy.pids()
    before = cpu_ns(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    used = cpu_ns(pids) - before
    r = parse_wrk(out)
    r["cpu_us_per_req"] = used / 1000.0 / max(r["requests"], 1)
    return r


def h2load_fixed(port, n, clients=10, path="/small", headers=()):
    cmd = ["taskset", "-c", LOAD_CPU, "h2load", "--h1", "-n", str(n), "-c", str(clients)]
    for h in headers:
        cmd += ["-H", h]
    cmd.append("http://%s:%d%s" % (HOST, port, path))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded", out)
    if not m or int(m.group(4)) != n:
        raise RuntimeError("h2load did not complete %d requests:\n%s" % (n, out[-2000:]))


def instructions_per_request(proxy, n, headers=()):
    """User-space instructions per keep-alive request: callgrind with instrumentation off
    during start-up and warm-up, on for exactly n requests."""
    out = os.path.join(proxy.dir, "callgrind.out")
    proxy.start(wrapper=["valgrind", "--tool=callgrind", "--instr-atstart=no",
                         "--callgrind-out-file=" + out])
    try:
        h2load_fixed(proxy.port, 500, headers=headers)  # warm-up: pools filled, paths touched
        pid = proxy.worker_pids()[0]
        # valgrind's pid is the proxy's pid (it execs in place); workers are children.
        target = str(proxy.proc.pid if proxy.name != "nginx" else pid)
        subprocess.run(["callgrind_control", "-i", "on", target], capture_output=True,
                       timeout=60, check=True)
        h2load_fixed(proxy.port, n, headers=headers)
        subprocess.run(["callgrind_control", "-i", "off", target], capture_output=True,
                       timeout=60, check=True)
        subprocess.run(["callgrind_control", "-d", target], capture_output=True, timeout=60)
        time.sleep(0.5)
    finally:
        proxy.stop()
    # Instrumentation was on only while the n requests ran: the dump holds exactly those.
    total = 0
    for name in os.listdir(proxy.dir):
        if name.startswith("callgrind.out"):
            with open(os.path.join(proxy.dir, name)) as f:
                for line in f:
                    if line.startswith("totals:"):
                        total += int(line.split()[1])
    return total / n


def syscalls_per_request(proxy, n):
    proxy.start()
    try:
        h2load_fixed(proxy.port, 500)
        stat = os.path.join(proxy.dir, "strace.txt")
        args = ["strace", "-c", "-f", "-o", stat]
        for pid in proxy.worker_pids():
            args += ["-p", str(pid)]
        tracer = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(tracer)
        time.sleep(1.0)
        h2load_fixed(proxy.port, n)
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
    for label, extra in plugin_setups():
        t = Torii(work, backend)
        t.extra = extra
        try:
            v = instructions_per_request(t, n, headers=["X-API-Key: bench-key"])
        except Exception as e:
            log("plugin cost %s failed: %s" % (label, e))
            v = None
        log("%-48s %s instructions/req" % (label, fmt(v)))
        rows.append((label, v))
    return rows


# ---------------------------------------------------------------------------------------------

def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return "{:,.0f}".format(v)
    return ("%%.%df" % digits) % v


def ratio(a, b):
    return "n/a" if a is None or not b else "%.2f" % (a / b)


def main():
    global BUILD
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--seconds", type=int, default=5, help="per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the RSS row")
    ap.add_argument("--fixed", type=int, default=5000, help="requests for callgrind/strace")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"))
    ap.add_argument("--only", default="", help="comma-separated proxies to run")
    ap.add_argument("--no-plugin-costs", dest="plugin_costs", action="store_false",
                    help="skip the per-plugin instruction counts")
    args = ap.parse_args()
    BUILD = args.build

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
    try:
        backend = Backend(work)
        kinds = [Torii, Nginx, Haproxy]
        if args.only:
            kinds = [k for k in kinds if k.name in args.only.split(",")]
        proxies = [k(work, backend) for k in kinds]

        scenarios = [
            ("keep-alive, small response", "/small", 50, False),
            ("new connection per request", "/small", 50, True),
            ("1 MiB responses", "/big", 10, False),
        ]
        results = {s[0]: {p.name: [] for p in proxies} for s in scenarios}
        for rnd in range(args.rounds):
            for scenario, path, conns, close in scenarios:
                order = proxies[rnd % len(proxies):] + proxies[:rnd % len(proxies)]
                for p in order:
                    p.start()
                    try:
                        run_wrk(p, path, 1, conns, close)  # warm-up
                        r = run_wrk(p, path, args.seconds, conns, close)
                    finally:
                        p.stop()
                    log("round %d  %-28s %-8s %9.0f req/s  p99 %7.2f ms  %6.1f us/req  errors %d"
                        % (rnd + 1, scenario, p.name, r["rps"], r["p99"] or 0,
                           r["cpu_us_per_req"], r["errors"]))
                    results[scenario][p.name].append(r)

        for scenario, *_ in scenarios:
            for metric, key, lower in [("req/s", "rps", False), ("p50 ms", "p50", True),
                                       ("p99 ms", "p99", True),
                                       ("proxy CPU us/req", "cpu_us_per_req", True),
                                       ("errors", "errors", True)]:
                vals = {}
                for p in proxies:
                    xs = [r[key] for r in results[scenario][p.name] if r[key] is not None]
                    vals[p.name] = statistics.median(xs) if xs else None
                rows.append((scenario, metric, vals, lower))

        for metric, fn, arg in [("instructions/req (callgrind)", instructions_per_request,
                                 args.fixed),
                                ("syscalls/req (strace -c)", syscalls_per_request, args.fixed),
                                ("RSS KiB, %d idle conns" % args.idle, idle_rss_kib, args.idle)]:
            vals = {}
            for p in proxies:
                try:
                    vals[p.name] = fn(p, arg)
                except Exception as e:
                    log("%s %s failed: %s" % (p.name, metric, e))
                    vals[p.name] = None
                log("%-34s %-8s %s" % (metric, p.name, fmt(vals[p.name])))
            rows.append(("keep-alive, small response", metric, vals, True))
        rows.append(("HTTP/2 over TLS (h2load)", "req/s", {p.name: None for p in proxies}, False))
        if args.plugin_costs and any(p.name == "torii" for p in proxies):
            plugin_rows = plugin_costs(work, backend, args.fixed)
    finally:
        stop_all()

    names = [p.name for p in proxies]
    lines = ["| scenario | metric | " + " | ".join(names) + " | torii/nginx | torii/haproxy |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for scenario, metric, vals, lower in rows:
        lines.append("| %s | %s | %s | %s | %s |" % (
            scenario, metric, " | ".join(fmt(vals.get(n)) for n in names),
            ratio(vals.get("torii"), vals.get("nginx")),
            ratio(vals.get("torii"), vals.get("haproxy"))))
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    header = ["torii bench, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine: %d cores, %s" % (os.cpu_count(), model.group(1) if model else "?"),
              "command: bench/bench.py --seconds %d --rounds %d --idle %d --fixed %d" % (
                  args.seconds, args.rounds, args.idle, args.fixed),
              "one worker each on core %s; wrk/h2load and the backend (nginx) on core %s; "
              "medians of %d rounds" % (PROXY_CPU, LOAD_CPU, args.rounds),
              "HTTP/2 over TLS: n/a until torii terminates TLS and speaks HTTP/2", ""]
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
    text = "\n".join(header + lines) + "\n"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    shutil.rmtree(work, ignore_errors=True)


BUILD = None

if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
