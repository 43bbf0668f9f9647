"""The latency-p99 row of make bench (issue #16 item 5): latency at a fixed, open-loop load.

1. nginx's maximum for the bare proxy: wrk, closed loop, 50 keep-alive connections on the
   load core (as the keep-alive row), 1 s of warm-up then LATENCY_MAX_SECONDS; measured
   again at the start of each round.
2. The load: LOAD_FRACTION (80%) of that rate, sent open loop by torii_loadgen
   (bench/loadgen/): request i due at t0 + i / rate, each timed from its due time, so a
   stall shows in the tail instead of slowing the client down (wrk's coordinated omission).
3. That load against nginx bare, torii bare, torii with the gateway chain (connection_rows:
   auth key + ratelimit local + stats + header_rewrite 2 sets + round_robin) and HAProxy
   bare, all four running at once on the proxy core and served in turn: the schedule is cut
   into SLICE_SECONDS slices dealt to them round robin (the order rotated each round, and
   backwards every other round: a backlog left at a slice's end falls on the next), each
   over 50 connections of its own. LATENCY_WARMUP seconds each unmeasured, then
   --latency-seconds each measured. Every request carries the chain's API key.

Why slices: this machine's virtual CPUs change speed by the second (a fixed loop of work
takes from 1x to 2.7x its fastest time on the proxy core, idle or not: other tenants of the
host). Run one after the other, each proxy met its own minute and the verdicts followed the
minute more than the proxy; interleaved a tenth of a second at a time, a slow spell falls on
all four alike.

Reported per proxy: medians over the rounds of the achieved rate, p50,
p99, p99.9 and max, the median of p99 over nginx's bare p99 in the same round, and each
round's p99. The medians leave out runs that fell short of the load. Item 5 holds in a round
when the chain's p99 is no more than nginx's bare p99.
A run that fell short of the rate (achieved < 97%), had errors or answers other than 2xx is
named in the notes: its percentiles describe an overload or answers made without the
backend, not the load asked for, and its round judges nothing.
"""

import json
import os
import statistics
import time

import bench as B

ROWS = ["latency-p99"]
CONNECTIONS = 50
LOAD_FRACTION = 0.8
LATENCY_MAX_SECONDS = 3
LATENCY_WARMUP = 1.0
LATENCY_ROUNDS = 3
SLICE_SECONDS = 0.1
HEADERS = ["X-API-Key: bench-key"]  # the chain's auth key; the bare proxies ignore it


def loadgen_bin():
    return os.path.join(B.BUILD, "torii_loadgen")


def run_loadgen(proxies, rate, seconds):
    """One open-loop run against the proxies (started), in slices, pinned to the load core;
    the loadgen's JSON for each proxy, in order."""
    log_path = os.path.join(proxies[0].dir, "loadgen-%d.log" % time.monotonic_ns())
    cmd = [loadgen_bin(), "-r", "%.1f" % rate, "-d", str(seconds), "-w", str(LATENCY_WARMUP),
           "-c", str(CONNECTIONS), "--slice", str(SLICE_SECONDS), "--drain", "10"]
    for h in HEADERS:
        cmd += ["-H", h]
    cmd += [",".join("%s:%d" % (B.HOST, p.port) for p in proxies), "/small"]
    p = B.start(cmd, B.LOAD_CPU, log_path=log_path)
    try:
        p.wait(timeout=len(proxies) * (LATENCY_WARMUP + seconds) + 30)
    finally:
        B.stop(p)
    with open(log_path) as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if p.returncode != 0 or len(lines) != len(proxies):
        raise RuntimeError("torii_loadgen failed (rc %s): %s" % (p.returncode, text[-500:]))
    return [json.loads(line) for line in lines]


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

    results = {label: [] for label, _ in proxies}  # per round: the loadgen's JSON, or None
    rates = []
    for rnd in range(LATENCY_ROUNDS):
        # nginx's maximum again each round: the load is 80% of what the machine gives now
        # (it is shared; a rate from a quieter minute would overload every proxy alike).
        nginx.start()
        try:
            B.run_wrk(nginx, "/small", 1, CONNECTIONS)  # warm-up
            top = B.run_wrk(nginx, "/small", LATENCY_MAX_SECONDS, CONNECTIONS)
        except Exception as e:  # no maximum, no load: this round has nothing to run
            B.log("latency-p99 round %d: nginx's maximum failed: %s" % (rnd + 1, e))
            for label, _ in proxies:
                results[label].append(None)
            continue
        finally:
            nginx.stop()
        rate = LOAD_FRACTION * top["rps"]
        rates.append((top["rps"], rate))
        B.log("round %d  latency-p99: nginx bare max %.0f req/s (wrk, %d connections); "
              "load %.0f req/s" % (rnd + 1, top["rps"], CONNECTIONS, rate))
        # A proxy's backlog at the end of its slice spills into the next one's: every other
        # round runs the order backwards, so each proxy follows a different one.
        order = proxies[rnd % len(proxies):] + proxies[:rnd % len(proxies)]
        if rnd % 2:
            order.reverse()
        try:
            for _, p in order:
                p.start()
            runs = run_loadgen([p for _, p in order], rate, args.latency_seconds)
        except Exception as e:
            B.log("latency-p99 round %d failed: %s" % (rnd + 1, e))
            runs = [None] * len(order)
        finally:
            for _, p in order:
                p.stop()
        for (label, _), r in zip(order, runs):
            results[label].append(r)
            if r is None:
                continue
            # Refused requests (a 401 from a chain missing its key, a 429) would be answered
            # without the backend: such a run measures something else, like an overload.
            r["short"] = (r["errors"] > 0 or r["non_2xx"] > 0 or
                          r["achieved_rate"] < 0.97 * rate)
            B.log("round %d  latency-p99 %-14s %8.0f req/s  p50 %6d us  p99 %6d us  "
                  "p99.9 %6d us  max %6d us  errors %d" % (
                      rnd + 1, label, r["achieved_rate"], r["p50_us"], r["p99_us"],
                      r["p99_9_us"], r["max_us"], r["errors"]))
            if r["short"]:
                notes.append("round %d, %s: %s req/s achieved of %s, %d errors, %d answers "
                             "not 2xx: not the load asked for, judges nothing" % (
                                 rnd + 1, label, B.fmt(r["achieved_rate"]), B.fmt(rate),
                                 r["errors"], r["non_2xx"]))
        base = results["nginx"][-1]
        for label, _ in proxies:
            r = results[label][-1]
            if r is not None:
                r["vs_nginx"] = (r["p99_us"] / base["p99_us"]
                                 if base and not base["short"] and base["p99_us"] else None)
    notes.insert(0, "nginx's bare maximum per round (wrk -c%d, %d s, closed loop) and the "
                 "open-loop load (%d%% of it): %s; the %d proxies served in turn, %g s "
                 "slices, %d connections each, %.0f s warm-up + %d s measured per proxy" % (
                     CONNECTIONS, LATENCY_MAX_SECONDS, round(LOAD_FRACTION * 100),
                     ", ".join("%s -> %s req/s" % (B.fmt(m), B.fmt(r)) for m, r in rates),
                     len(proxies), SLICE_SECONDS, CONNECTIONS, LATENCY_WARMUP, args.latency_seconds))

    def median(label, key):
        """Over the runs that served the load: an overloaded run measured something else."""
        xs = [r[key] for r in results[label]
              if r is not None and not r["short"] and r.get(key) is not None]
        return statistics.median(xs) if xs else None

    lines = ["| proxy, at 80% of nginx's bare max req/s | achieved req/s | p50 us | p99 us | "
             "p99.9 us | max us | p99 / nginx's p99 (same round) | p99 per round (us) |",
             "|---|---|---|---|---|---|---|---|"]
    for label, _ in proxies:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, B.fmt(median(label, "achieved_rate")), B.fmt(median(label, "p50_us"), 0),
            B.fmt(median(label, "p99_us"), 0), B.fmt(median(label, "p99_9_us"), 0),
            B.fmt(median(label, "max_us"), 0),
            "n/a" if median(label, "vs_nginx") is None else "%.2f" % median(label, "vs_nginx"),
            ", ".join("n/a" if r is None else B.fmt(r["p99_us"], 0) + (" (short)" if r["short"]
                                                                    else "")
                      for r in results[label])))
    # Item 5, judged round by round (each round is one "same run": one measured maximum, one
    # load); a round where nginx or the chain fell short of the load judges nothing.
    verdicts = []
    for rnd in range(LATENCY_ROUNDS):
        n = results["nginx"][rnd]
        c = results.get("torii + chain", [None] * LATENCY_ROUNDS)[rnd]
        if n is None or c is None:
            verdicts.append("round %d: n/a" % (rnd + 1))
        elif n["short"] or c["short"]:
            verdicts.append("round %d: not judged (the load was not served)" % (rnd + 1))
        else:
            verdicts.append("round %d: %s us against %s us, %s" % (
                rnd + 1, B.fmt(c["p99_us"], 0), B.fmt(n["p99_us"], 0),
                "met" if c["p99_us"] <= n["p99_us"] else "missed"))
    judged = [v for v in verdicts if v.endswith("met") or v.endswith("missed")]
    notes.append("issue #16 item 5 (the chain's p99 <= nginx's bare p99 at the same load): "
                 "met in %d of %d judged rounds: %s" % (
                     sum(v.endswith("met") for v in judged), len(judged), "; ".join(verdicts)))
    return lines, notes
