"""The latency-p99 row of make bench (issue #16 item 5): latency at a fixed, open-loop load.

1. nginx's maximum for the bare proxy: wrk, closed loop, 50 keep-alive connections on the
   load core (as the keep-alive row), 1 s of warm-up then LATENCY_MAX_SECONDS.
2. The load: LOAD_FRACTION (80%) of that rate, sent open loop by torii_loadgen
   (bench/loadgen/, built with torii): the same 50 connections, request i due at
   t0 + i / rate, each timed from its due time, so a stall shows in the tail instead of
   slowing the client down (wrk's coordinated omission). LATENCY_WARMUP seconds of the same
   load unmeasured, then --latency-seconds measured.
3. That load against nginx bare, torii bare, torii with the gateway chain (connection_rows:
   auth key + ratelimit local + stats + header_rewrite 2 sets + round_robin) and HAProxy bare,
   LATENCY_ROUNDS rounds in rotated order; every request carries the chain's API key.

Reported per proxy: medians over the rounds of the achieved rate, p50, p99, p99.9 and max,
and p99 over nginx's bare p99 in the same run. Item 5 holds when the chain's p99 is no more
than nginx's bare p99. A round that fell short of the rate (achieved < 97%) or had errors is
named in the notes: its percentiles describe a different load.
"""

import json
import os
import statistics
import subprocess
import time

import bench as B

ROWS = ["latency-p99"]
CONNECTIONS = 50
LOAD_FRACTION = 0.8
LATENCY_MAX_SECONDS = 3
LATENCY_WARMUP = 1.0
LATENCY_ROUNDS = 2
HEADERS = ["X-API-Key: bench-key"]  # the chain's auth key; the bare proxies ignore it


def loadgen_bin():
    return os.path.join(B.BUILD, "torii_loadgen")


def run_loadgen(proxy, rate, seconds):
    """One open-loop run against the proxy (started), pinned to the load core; its JSON."""
    log_path = os.path.join(proxy.dir, "loadgen-%d.log" % time.monotonic_ns())
    cmd = [loadgen_bin(), "-r", "%.1f" % rate, "-d", str(seconds), "-w", str(LATENCY_WARMUP),
           "-c", str(CONNECTIONS), "--drain", "10"]
    for h in HEADERS:
        cmd += ["-H", h]
    cmd += ["%s:%d" % (B.HOST, proxy.port), "/small"]
    p = B.start(cmd, B.LOAD_CPU, log_path=log_path)
    try:
        p.wait(timeout=LATENCY_WARMUP + seconds + 30)
    finally:
        B.stop(p)
    with open(log_path) as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError("torii_loadgen failed (rc %s): %s" % (p.returncode, text[-500:]))
    return json.loads(lines[-1])


def run(args, work, backend, rows_wanted):
    """Runs the row if wanted; returns (table lines, notes)."""
    if "latency-p99" not in rows_wanted:
        return [], []
    if not os.access(loadgen_bin(), os.X_OK):
        raise RuntimeError("%s is missing: make build builds it" % loadgen_bin())
    import connection_rows
    nginx = B.Nginx(work, backend)
    torii = B.Torii(work, backend)
    chain = B.Torii(work, backend)
    chain.extra = connection_rows.chain_extra()
    haproxy = B.Haproxy(work, backend)
    proxies = [("nginx", nginx), ("torii", torii), ("torii + chain", chain),
               ("haproxy", haproxy)]
    if args.only:
        keep = args.only.split(",")
        proxies = [(label, p) for label, p in proxies if p.name in keep or p is nginx]
    notes = []

    nginx.start()
    try:
        B.run_wrk(nginx, "/small", 1, CONNECTIONS)  # warm-up
        top = B.run_wrk(nginx, "/small", LATENCY_MAX_SECONDS, CONNECTIONS)
    finally:
        nginx.stop()
    rate = LOAD_FRACTION * top["rps"]
    B.log("latency-p99: nginx bare max %.0f req/s (wrk, %d connections); load %.0f req/s"
          % (top["rps"], CONNECTIONS, rate))
    notes.append("latency-p99: nginx's bare maximum %s req/s (wrk -c%d, %d s, closed loop); "
                 "open-loop load %s req/s (%d%%), %d connections, %.0f s warm-up + %d s "
                 "measured, %d rounds" % (
                     B.fmt(top["rps"]), CONNECTIONS, LATENCY_MAX_SECONDS, B.fmt(rate),
                     round(LOAD_FRACTION * 100), CONNECTIONS, LATENCY_WARMUP,
                     args.latency_seconds, LATENCY_ROUNDS))

    results = {label: [] for label, _ in proxies}
    for rnd in range(LATENCY_ROUNDS):
        order = proxies[rnd % len(proxies):] + proxies[:rnd % len(proxies)]
        for label, p in order:
            p.start()
            try:
                r = run_loadgen(p, rate, args.latency_seconds)
            except Exception as e:
                B.log("latency-p99 %s failed: %s" % (label, e))
                continue
            finally:
                p.stop()
            B.log("round %d  latency-p99 %-14s %8.0f req/s  p50 %6d us  p99 %6d us  "
                  "p99.9 %6d us  max %6d us  errors %d" % (
                      rnd + 1, label, r["achieved_rate"], r["p50_us"], r["p99_us"],
                      r["p99_9_us"], r["max_us"], r["errors"]))
            if r["errors"] or r["achieved_rate"] < 0.97 * rate:
                notes.append("latency-p99 round %d, %s: %s req/s achieved of %s, %d errors" % (
                    rnd + 1, label, B.fmt(r["achieved_rate"]), B.fmt(rate), r["errors"]))
            results[label].append(r)

    def median(label, key):
        xs = [r[key] for r in results[label]]
        return statistics.median(xs) if xs else None

    base = median("nginx", "p99_us")
    lines = ["| proxy at %s req/s (80%% of nginx's bare max) | achieved req/s | p50 us | "
             "p99 us | p99.9 us | max us | p99 / nginx p99 | p99 per round (us) |" % B.fmt(rate),
             "|---|---|---|---|---|---|---|---|"]
    for label, _ in proxies:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, B.fmt(median(label, "achieved_rate")), B.fmt(median(label, "p50_us"), 0),
            B.fmt(median(label, "p99_us"), 0), B.fmt(median(label, "p99_9_us"), 0),
            B.fmt(median(label, "max_us"), 0), B.ratio(median(label, "p99_us"), base),
            ", ".join(B.fmt(r["p99_us"], 0) for r in results[label]) or "n/a"))
    chain_p99 = median("torii + chain", "p99_us")
    if chain_p99 is not None and base:
        notes.append("issue #16 item 5 (the chain's p99 <= nginx's bare p99 in the same run): "
                     "%s us against %s us, %s" % (B.fmt(chain_p99, 0), B.fmt(base, 0),
                                                  "met" if chain_p99 <= base else "missed"))
    return lines, notes
