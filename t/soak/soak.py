#!/usr/bin/python3
"""A soak run of torii (not part of CI; docs/testing.md, docs/reliability.md "Leaks and soak").

    /usr/bin/python3 t/soak/soak.py [--minutes 10] [--reload-every 10] [--sample-every 10]
                                    [--build-dir build] [--valgrind DIR]

Starts torii (2 workers, the fleet process with health checks) in front of real peers on
127.0.0.1 and drives mixed traffic at a moderate, bounded rate for the whole run:

  h1-keepalive  http.client on one persistent connection (reopened after a reload closed it)
  h1-new        one connection per request
  h2c, h2-tls   h2load runs of 200 requests (2 connections, 10 streams each), back to back
  ws            python3-websockets: connect, 10 echoed messages, close
  tcp           a TCP stream server: connect, 16 KiB echoed, close

while the master gets SIGHUP every --reload-every seconds. Every --sample-every seconds it
samples the RSS (KiB) of the master, the fleet process and every worker, and the master's open
fds, and at the end prints one table row per sample, the traffic counts with failures, and a
verdict line: the master's RSS growth from the first to the last sample (a master that leaks
per reload grows with every row; workers are replaced on every reload, so their RSS shows
one generation's working set).

A failure is a request that did not get its answer on a fresh connection: a keep-alive
connection closed by a draining worker between requests is reopened and the request sent
again, as any HTTP client does (RFC 9112 9.3.1); that is counted as "reconnects", not as a
failure. h2load's "failed" streams are counted as failures.

--valgrind DIR runs torii under valgrind memcheck (--trace-children=yes; forked workers and
the fleet process are followed too), one log per process in DIR, and summarises each: the
ERROR SUMMARY and the "definitely lost" / "indirectly lost" bytes. memcheck.sh wraps it.

Everything is bounded: the run by --minutes, every client call by a timeout, every process
started here stopped by PID at the end (harness.stop_process).
"""

import argparse
import asyncio
import glob
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import harness  # noqa: E402
from harness import HOST, config, main_block, server_block, upstream_block  # noqa: E402
from pki import Pki  # noqa: E402

try:
    import websockets  # noqa: E402
except ImportError:  # pragma: no cover - Debian's python3-websockets is a test dependency
    websockets = None


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.failed = {}
        self.reconnects = {}
        self.last_error = {}

    def add(self, kind, ok=0, failed=0, reconnects=0, error=None):
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + ok
            self.failed[kind] = self.failed.get(kind, 0) + failed
            self.reconnects[kind] = self.reconnects.get(kind, 0) + reconnects
            if error:
                self.last_error[kind] = str(error)[:200]


# ---------------------------------------------------------------------------------------------
# Traffic. Each loop runs until `stop` is set; `pause` is the bound on its rate.

def h1_keepalive(port, stop, counts, pause):
    conn = None
    while not stop.is_set():
        for attempt in (1, 2):
            fresh = conn is None
            if fresh:
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
            try:
                conn.request("GET", "/api/echo?k=1")
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    counts.add("h1-keepalive", ok=1)
                else:
                    counts.add("h1-keepalive", failed=1, error="status %d" % r.status)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = None
                if fresh or attempt == 2:
                    counts.add("h1-keepalive", failed=1, error=e)
                    break
                counts.add("h1-keepalive", reconnects=1)
        time.sleep(pause)
    if conn:
        conn.close()


def h1_new(port, stop, counts, pause):
    while not stop.is_set():
        try:
            r = harness.request(port, "GET", "/api/echo?new=1", timeout=10)
            if r.status == 200:
                counts.add("h1-new", ok=1)
            else:
                counts.add("h1-new", failed=1, error="status %d" % r.status)
        except (OSError, http.client.HTTPException) as e:
            counts.add("h1-new", failed=1, error=e)
        time.sleep(pause)


H2LOAD_LINE = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                         r"(\d+) failed, (\d+) errored, (\d+) timeout")


def h2load_loop(kind, url, stop, counts, pause, extra=()):
    while not stop.is_set():
        cmd = ["h2load", "-n", "200", "-c", "2", "-m", "10", "-T", "10", "-N", "10"] + \
            list(extra) + [url]
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
            m = H2LOAD_LINE.search(cp.stdout)
            if not m:
                counts.add(kind, failed=200, error="h2load: " + (cp.stdout + cp.stderr)[-200:])
            else:
                total, _, _, succeeded, failed, errored, timeout = map(int, m.groups())
                codes = re.search(r"status codes: (\d+) 2xx", cp.stdout)
                ok2xx = int(codes.group(1)) if codes else 0
                counts.add(kind, ok=ok2xx, failed=total - ok2xx,
                           error=None if ok2xx == total else "h2load: %s; %s" % (
                               m.group(0), codes.group(0) if codes else ""))
        except subprocess.TimeoutExpired as e:
            counts.add(kind, failed=200, error=e)
        time.sleep(pause)


def ws_loop(port, stop, counts, pause):
    async def one():
        async with websockets.connect("ws://%s:%d/ws/echo" % (HOST, port), open_timeout=10,
                                      close_timeout=5) as ws:
            for i in range(10):
                msg = "message %d" % i
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 10)
                if got != msg:
                    raise RuntimeError("echo %r for %r" % (got, msg))

    while not stop.is_set():
        try:
            asyncio.run(asyncio.wait_for(one(), 30))
            counts.add("ws", ok=1)
        except Exception as e:  # any failure of the round is a failed session
            counts.add("ws", failed=1, error=repr(e))
        time.sleep(pause)


def tcp_loop(port, stop, counts, pause):
    payload = os.urandom(16 * 1024)
    while not stop.is_set():
        try:
            with socket.create_connection((HOST, port), timeout=10) as s:
                s.sendall(payload)
                got = bytearray()
                while len(got) < len(payload):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                if bytes(got[:len(payload)]) != payload:
                    raise RuntimeError("echoed %d of %d bytes" % (len(got), len(payload)))
            counts.add("tcp", ok=1)
        except (OSError, RuntimeError) as e:
            counts.add("tcp", failed=1, error=e)
        time.sleep(pause)


# ---------------------------------------------------------------------------------------------
# Processes

def process_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def sample(master_pid):
    """{"master": KiB, "fleet": KiB, "workers": [KiB...], "fds": n} of the tree now. Under
    valgrind the processes are valgrind's (memcheck-amd64-) with torii inside."""
    out = {"master": harness.vm_rss_kib(master_pid) or 0, "fleet": 0, "workers": [],
           "fds": harness.open_fds(master_pid) or 0}
    for pid, _ in harness.children(master_pid):
        rss = harness.vm_rss_kib(pid)
        if rss is None:
            continue
        if "fleet" in process_name(pid):
            out["fleet"] = rss
        else:
            out["workers"].append(rss)
    return out


def gateway_config(ports, peers, cert):
    http_locations = [
        {"path": "/api/", "upstream": "api"},
        {"path": "/ws/", "upstream": "ws"},
    ]
    return config(
        main_block(workers=2, log_level="notice", shutdown_timeout="5s",
                   tunnel_idle_timeout="30s", max_draining_generations=4),
        upstream_block("api", [peers["http"].port], keepalive=16,
                       health={"path": "/api/echo", "interval": "2s"}),
        upstream_block("ws", [peers["ws"].port]),
        upstream_block("echo", [peers["tcp"].port], protocol="tcp"),
        server_block([ports["http"]], http_locations, http2_max_concurrent_streams=100),
        server_block([ports["tls"]], http_locations, tls={"cert": cert.cert, "key": cert.key}),
        server_block([ports["tcp"]], [], protocol="tcp", upstream="echo"),
    )


def valgrind_summary(log_dir):
    """One line per process log: pid, errors, definitely and indirectly lost bytes."""
    rows = []
    for path in sorted(glob.glob(os.path.join(log_dir, "vg.*.log"))):
        with open(path, errors="replace") as f:
            text = f.read()

        def num(pattern):
            m = re.search(pattern, text)
            return int(m.group(1).replace(",", "")) if m else None

        rows.append({
            "log": os.path.basename(path),
            "errors": num(r"ERROR SUMMARY: ([\d,]+) errors"),
            "definitely": num(r"definitely lost: ([\d,]+) bytes") or 0,
            "indirectly": num(r"indirectly lost: ([\d,]+) bytes") or 0,
            "possibly": num(r"possibly lost: ([\d,]+) bytes") or 0,
            "complete": "ERROR SUMMARY" in text,
            "torii": "torii" in text,
        })
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--reload-every", type=float, default=10.0)
    ap.add_argument("--sample-every", type=float, default=10.0)
    ap.add_argument("--build-dir", default=None, help="default: <repo>/build")
    ap.add_argument("--valgrind", metavar="DIR", default=None,
                    help="run torii under valgrind memcheck, logs in DIR")
    ap.add_argument("--pause", type=float, default=0.01,
                    help="sleep between two requests of one client loop (bounds the rate)")
    args = ap.parse_args()
    if args.build_dir:
        os.environ["TORII_BUILD_DIR"] = os.path.abspath(args.build_dir)
    work = tempfile.mkdtemp(prefix="torii-soak-")
    pause = args.pause * (20 if args.valgrind else 1)

    for d in ("http", "ws", "tcp", "torii"):
        os.makedirs(os.path.join(work, d))
    peers = {
        "http": harness.Backend("http", workdir=os.path.join(work, "http")),
        "ws": harness.Backend("ws", script="ws_backend.py", workdir=os.path.join(work, "ws")),
        "tcp": harness.Backend("tcp", mode="echo", script="tcp_echo_backend.py",
                               workdir=os.path.join(work, "tcp")),
    }
    t = None
    stop = threading.Event()
    threads = []
    try:
        for p in peers.values():
            p.start()
        cert = Pki(os.path.join(work, "pki")).server("127.0.0.1", stem="local")
        ports = {k: harness.free_port() for k in ("http", "tls", "tcp")}
        t = harness.Torii(gateway_config(ports, peers, cert), workdir=os.path.join(work, "torii"))
        if args.valgrind:
            os.makedirs(args.valgrind, exist_ok=True)
            wrapper = os.path.join(work, "torii-under-valgrind")
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\nexec valgrind --tool=memcheck --leak-check=full "
                        "--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite "
                        "--trace-children=yes --child-silent-after-fork=no --num-callers=30 "
                        "--log-file=%s/vg.%%p.log %s \"$@\"\n"
                        % (os.path.abspath(args.valgrind), harness.torii_bin()))
            os.chmod(wrapper, 0o755)
            os.environ["TORII_BIN"] = wrapper
        t.start(timeout=120 if args.valgrind else 15)
        harness.wait_until(lambda: len(harness.children(t.pid)) >= 3, 60)
        print("torii master %d, work dir %s" % (t.pid, work), flush=True)

        counts = Counts()
        h2_extra = []
        loops = [
            (h1_keepalive, (ports["http"], stop, counts, pause)),
            (h1_new, (ports["http"], stop, counts, pause)),
            (h2load_loop, ("h2c", "http://%s:%d/api/echo" % (HOST, ports["http"]), stop, counts,
                           pause * 10, h2_extra)),
            (h2load_loop, ("h2-tls", "https://%s:%d/api/echo" % (HOST, ports["tls"]), stop,
                           counts, pause * 10, h2_extra)),
            (tcp_loop, (ports["tcp"], stop, counts, pause)),
        ]
        if websockets is not None:
            loops.append((ws_loop, (ports["http"], stop, counts, pause)))
        for fn, fargs in loops:
            th = threading.Thread(target=fn, args=fargs, daemon=True)
            th.start()
            threads.append(th)

        start = time.monotonic()
        end = start + args.minutes * 60
        next_reload = start + args.reload_every
        next_sample = start
        reloads = 0
        samples = []
        print("%7s %8s %11s %11s %9s %7s %5s %10s" % (
            "time_s", "reloads", "master_KiB", "workers_KiB", "fleet_KiB", "procs", "fds",
            "requests"), flush=True)
        while time.monotonic() < end and t.alive():
            now = time.monotonic()
            if now >= next_sample:
                s = sample(t.pid)
                s["t"] = now - start
                s["reloads"] = reloads
                with counts.lock:
                    s["requests"] = sum(counts.ok.values())
                samples.append(s)
                print("%7.0f %8d %11d %11s %9d %7d %5d %10d" % (
                    s["t"], reloads, s["master"],
                    "/".join(str(w) for w in s["workers"][:4]) +
                    ("+" if len(s["workers"]) > 4 else ""),
                    s["fleet"], 1 + len(s["workers"]) + (1 if s["fleet"] else 0), s["fds"],
                    s["requests"]), flush=True)
                next_sample += args.sample_every
            if now >= next_reload:
                os.kill(t.pid, signal.SIGHUP)
                reloads += 1
                next_reload += args.reload_every
            time.sleep(min(0.2, max(0.0, min(next_sample, next_reload) - time.monotonic())))
        stop.set()
        for th in threads:
            th.join(timeout=70)
        alive = t.alive()
        crashes = len(re.findall(r"killed by signal|exited with code [1-9]", t.log()))
        if args.valgrind and alive:
            # A graceful stop: a fast one SIGKILLs workers after 3 s, and memcheck needs
            # longer than that for each process's leak check on the way out.
            os.kill(t.pid, signal.SIGQUIT)
            try:
                t.proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                print("torii under valgrind did not stop within 180 s of SIGQUIT")
        t.stop()

        print()
        print("%-14s %10s %8s %11s  %s" % ("traffic", "ok", "failed", "reconnects",
                                           "last error"))
        for kind in sorted(counts.ok):
            print("%-14s %10d %8d %11d  %s" % (kind, counts.ok[kind], counts.failed[kind],
                                              counts.reconnects[kind],
                                              counts.last_error.get(kind, "")))
        total_ok = sum(counts.ok.values())
        total_failed = sum(counts.failed.values())
        first, last = samples[0], samples[-1]
        # Past the warm-up: the second sample on has all pools and caches filled once.
        base = samples[1] if len(samples) > 2 else first
        growth = last["master"] - base["master"]
        worker_rss = [w for s in samples for w in s["workers"]]
        print()
        print("torii %s after %d reloads over %.1f min: %d requests ok, %d failed; worker or "
              "fleet crashes logged: %d" % ("running" if alive else "DIED", reloads,
                                            args.minutes, total_ok, total_failed, crashes))
        print("master RSS %d KiB at %.0f s -> %d KiB at %.0f s (%+d KiB); master fds %d -> %d; "
              "worker RSS %d..%d KiB" % (base["master"], base["t"], last["master"], last["t"],
                                        growth, first["fds"], last["fds"],
                                        min(worker_rss or [0]), max(worker_rss or [0])))
        rc = 0 if alive and crashes == 0 else 1
        if args.valgrind:
            rows = valgrind_summary(args.valgrind)
            print()
            print("%-22s %7s %12s %12s %10s" % ("valgrind log", "errors", "definitely",
                                                "indirectly", "possibly"))
            for r in rows:
                if not r["torii"]:
                    continue
                print("%-22s %7s %12d %12d %10d%s" % (
                    r["log"], r["errors"], r["definitely"], r["indirectly"], r["possibly"],
                    "" if r["complete"] else "  (no summary: killed?)"))
                if r["errors"] or r["definitely"] or r["indirectly"]:
                    rc = 1
        return rc
    finally:
        stop.set()
        if t is not None:
            t.stop()
        for p in peers.values():
            p.stop()


if __name__ == "__main__":
    sys.exit(main())
