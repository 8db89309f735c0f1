#!/usr/bin/env python3
"""report.py: turns bench.py's results into bench/RESULTS.md and the latency plots.

Pure presentation: it reads results.json (and the per-scenario series files) and writes
markdown, a gnuplot script and PNGs; it measures nothing. Run alone to redo the report
from the last run: python3 bench/report.py [bench/out/results.json]
"""

import datetime
import json
import os
import shutil
import subprocess
import sys

MODES = (("slow", "App needs 1.5 s to start"), ("instant", "App ready at once"))
PLOTS = {"slow": "latency-slow-start.png", "instant": "latency-instant-start.png"}
SCALE_CPU_PLOT = "scale-cpu.png"
# bench.py's QUIET_WAIT_S, for the text (report.py may run alone on an old results.json).
QUIET_WAIT_TEXT = 180


def busy_note(m):
    """The line above every table of a run started on a busy machine (bench/run --busy)."""
    if not m.get("busy"):
        return ""
    return ("*Measured on a busy machine: load average %s at start, above %g; not a quiet machine's "
            "numbers.*\n\n" % (m["load"][0], m["busy_threshold"]))


def write_series(path, series, bucket_s=0.1):
    """One line per bucket of time in which requests ended; a blank line where none did
    (a stall), so that gnuplot breaks the line there instead of drawing across it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("# t_s p50_ms p99_ms max_ms failed\n")
        last = None
        for t, p50, p99, mx, failed in series:
            if last is not None and t - last > 1.5 * bucket_s:
                f.write("\n")
            last = t
            p = "%.3f %.3f %.3f" % (p50 / 1000.0, p99 / 1000.0, mx / 1000.0) if mx else "NaN NaN NaN"
            f.write("%.2f %s %d\n" % (t, p, failed))


# ---- formatting ----

def ms(us):
    v = us / 1000.0
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 1 else "%.2f" % v


def seconds(s):
    return "%.2f" % s if s < 10 else "%.1f" % s


def mib(kib):
    return "%.1f" % (kib / 1024.0) if kib else "–"


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if values else 0


def failures_text(failures):
    return ", ".join("%s %d" % (k, v) for k, v in sorted(failures.items(), key=lambda kv: -kv[1])) or "–"


def retried(load):
    """Requests answered only on loadgen's retry after the keep-alive race (the key was
    retried_idle_close before loadgen counted them as a class of their own)."""
    return load.get("retried", load.get("retried_idle_close", "?"))


def unannounced_closes(load):
    """"seen before reuse / retried": keep-alive connections the server closed without a
    Connection: close. loadgen copes with both; a client that neither checks a pooled
    connection before reusing it nor retries (wrk) counts each as a socket error."""
    return "%s / %s" % (load.get("idle_closed", "?"), retried(load))


def run_length(r):
    return r.get("steady_seconds", 0) + sum(u["wall_s"] for u in r["upgrades"])


def figures(r, results):
    """The numbers of one scenario that the tables show and compare."""
    load = r["load"]
    requests = max(1, int(load["requests"]))
    failed = int(load["failed"])
    n = len(r["upgrades"])
    base = baseline(results, r["app"])
    ready = results["start_to_ready"].get("%s-%d" % (r["app"], r["delay_ms"]))
    walls = [u["wall_s"] for u in r["upgrades"]]
    length = run_length(r)
    return {
        "upgrades_ok": sum(1 for u in r["upgrades"] if u["ok"] and u["converged"]),
        "upgrades": n,
        "failed": failed,
        "per_100k": failed * 1e5 / requests,
        "per_upgrade": failed / n if n else None,
        "up_p99": r["upgrade"]["p99_us"] if n else None,
        "up_max": r["upgrade"]["max_us"] if n else None,
        "st_p99": r["steady"]["p99_us"],
        "st_max": r["steady"]["max_us"],
        "throughput": r["steady_rate"] / base if base else None,
        "rate": r["steady_rate"],
        "wall": median(walls) if walls else None,
        "wall_max": max(walls) if walls else None,
        "wall_ratio": median(walls) / ready if walls and ready else None,
        "rss": r.get("rss_kib_end") or None,
        "cpu_pct": 100.0 * r["cpu_s"] / length if r.get("cpu_s") is not None and length and r["supervisor"] != "none"
        else None,
        "wakeups": r.get("idle_wakeups_per_min"),
    }


def baseline(results, app):
    for r in results["scenarios"]:
        if r["key"] == "baseline-" + app and "error" not in r:
            return r["steady_rate"]
    return None


# ---- tables ----

def main_table(results, mode):
    rows = [r for r in results["scenarios"] if r["mode"] == mode]
    delay = results["slow_start_ms"] if mode == "slow" else 0
    ready = ", ".join("%s %s s" % ("C" if app == "c" else "Node", seconds(results["start_to_ready"][key]))
                      for app in ("c", "node") for key in ["%s-%d" % (app, delay)]
                      if key in results["start_to_ready"])
    out = ["| tool | workers | upgrades done | failed requests: per 100k / per upgrade | failures | "
           "keep-alive closes without notice: seen before reuse / races retried | "
           "upgrade windows p99 / max (ms) | steady p99 / max (ms) | throughput vs app alone | "
           "upgrade wall time median / max (s) | ÷ app start-to-ready (%s) |" % (ready or "not measured"),
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append("| %s | %s | did not run: %s ||||||||| " % (r["label"], r["workers"], r["error"]))
            continue
        f = figures(r, results)
        if not r["upgrades"]:
            out.append("| %s | %d | – | %.1f / – | %s | %s | – | %s / %s | 1.00 (%.0f req/s) | – | – |" % (
                r["label"], r["workers"], f["per_100k"], failures_text(r["steady"]["failures"]),
                unannounced_closes(r["load"]), ms(f["st_p99"]), ms(f["st_max"]), f["rate"]))
            continue
        failures = dict(r["upgrade"]["failures"])
        for k, v in r["steady"]["failures"].items():
            failures[k] = failures.get(k, 0) + v
        out.append("| %s | %d | %d/%d | %s / %s | %s | %s | %s / %s | %s / %s | %s | %s / %s | %s |" % (
            r["label"], r["workers"], f["upgrades_ok"], f["upgrades"], "%.1f" % f["per_100k"],
            "%.1f" % f["per_upgrade"], failures_text(failures), unannounced_closes(r["load"]), ms(f["up_p99"]),
            ms(f["up_max"]),
            ms(f["st_p99"]), ms(f["st_max"]), "%.2f" % f["throughput"] if f["throughput"] else "–",
            seconds(f["wall"]), seconds(f["wall_max"]), "%.2f×" % f["wall_ratio"] if f["wall_ratio"] else "–"))
    return "\n".join(out)


def percentiles_table(results):
    out = ["| tool | app start | steady p50 / p99 / p99.9 / max | upgrade windows p50 / p99 / p99.9 / max |",
           "|---|---|---|---|"]
    for mode, _ in MODES:
        for r in results["scenarios"]:
            if r["mode"] != mode or "error" in r:
                continue

            def four(w):
                return " / ".join(ms(w[k]) for k in ("p50_us", "p99_us", "p999_us", "max_us"))
            out.append("| %s | %s | %s | %s |" % (r["label"], "instant" if mode == "instant" else "%.1f s" % (
                results["slow_start_ms"] / 1000.0), four(r["steady"]), four(r["upgrade"]) if r["upgrades"] else "–"))
    return "\n".join(out)


def clients_table(results):
    out = ["| tool | app start | new version first answered (s) | old version last answered (s) | "
           "keep-alive closes seen before reuse | keep-alive races retried | "
           "failed: keep-alive / new-connection clients | versions seen (requests) |",
           "|---|---|---|---|---|---|---|---|"]
    for mode, _ in MODES:
        for r in results["scenarios"]:
            if r["mode"] != mode or "error" in r or not r["upgrades"]:
                continue
            new = [w["new_first_s"] for w in r["windows"] if w.get("new_first_s") is not None]
            old = [w["old_last_s"] for w in r["windows"] if w.get("old_last_s") is not None]
            seen = [item.rpartition(":") for item in r["load"].get("versions", "").split(",") if item]
            out.append("| %s | %s | %s | %s | %s | %s | %d / %d | %s |" % (
                r["label"], "1.5 s" if mode == "slow" else "instant",
                seconds(median(new)) if new else "never", seconds(median(old)) if old else "–",
                r["load"].get("idle_closed", "?"), retried(r["load"]),
                r["failures_by_mode"].get("k", 0), r["failures_by_mode"].get("c", 0),
                "%d versions, %s" % (len(seen), ", ".join(
                    "%s %s" % (v.rpartition("-")[2], n) for v, _, n in seen[:3])) + (", ..." if len(seen) > 3 else "")))
    return "\n".join(out)


def cost_table(results):
    out = ["| tool | supervisor process | RSS at end (MiB) | CPU during the run (% of a core) | "
           "idle wake-ups per minute | fds at end |",
           "|---|---|---|---|---|---|"]
    for r in results["scenarios"]:
        if r["mode"] != "instant" or "error" in r or r["supervisor"] == "none":
            continue
        f = figures(r, results)
        extra = ""
        if r.get("manager_cpu_s") is not None and run_length(r) and r["key"].startswith("liveswap"):
            extra = " (systemd --user: %.1f%%)" % (100.0 * r["manager_cpu_s"] / run_length(r))
        out.append("| %s | %s | %s | %s%s | %s | %s |" % (
            r["label"], r["supervisor"], mib(f["rss"]), "%.1f" % f["cpu_pct"] if f["cpu_pct"] is not None else "–",
            extra, "%.0f" % f["wakeups"] if f["wakeups"] is not None else "–", r.get("fds_end", "–")))
    return "\n".join(out)


def idle_health_table(results):
    rows = results.get("idle_health") or []
    if not rows:
        return "Not measured in this run."
    out = ["| worker health | idle wake-ups per minute |", "|---|---|"]
    for r in rows:
        out.append("| %s | %s |" % (r["label"], r.get("error") or "%.0f" % r["wakeups_per_min"]))
    return "\n".join(out)


def step_ms(row):
    """Median wall time per worker replaced over the upgrades that converged, in ms (None if
    none did): one that never converged (a tool that hung) has no duration to compare, and
    counting its 120 s timeout would make a ratio of the harness, not of the tool."""
    if "error" in row:
        return None
    walls = [u["wall_s"] for u in row["upgrades"] if u["ok"] and u["converged"]]
    return 1000.0 * median(walls) / row["workers"] if walls else None


def not_converged(row, who):
    """", floor: 2 of 3 upgrades did not converge" or ""."""
    if not row or "error" in row:
        return ""
    bad = sum(1 for u in row["upgrades"] if not (u["ok"] and u["converged"]))
    return ", %s: %d of %d upgrades did not converge" % (who, bad, len(row["upgrades"])) if bad else ""


def small_upgrades(results, per_size):
    """" (15 below 100 workers)" when the small sizes ran more upgrades than the others
    (bench.scale_upgrades()), as the run recorded them; "" otherwise."""
    counts = [len(r["upgrades"]) for r in results.get("scale", []) if r["workers"] < 100 and "error" not in r]
    most = max(counts) if counts else per_size
    return " (%d below 100 workers)" % most if most != per_size else ""


def scale_table(results):
    """liveswap's rows, each beside the floor's for the same N, strategy and load."""
    rows = results["scale"]
    floors = {(r["strategy"], r["workers"], r.get("clients")): r for r in rows if r.get("tool") == "floor"}
    out = ["| workers | strategy | clients | per step: liveswap / floor (ms) | ratio | all workers spawned (s) | "
           "upgrade wall time median / max (s) | failed requests / requests | supervisor RSS (MiB) | "
           "supervisor fds | supervisor CPU per upgrade (ms) | load average at start |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.get("tool") == "floor":
            continue
        floor = floors.get((row["strategy"], row["workers"], row.get("clients")))
        mine, base = step_ms(row), step_ms(floor) if floor else None
        step = "%s / %s%s%s" % ("%.2f" % mine if mine is not None else "-", "%.2f" % base if base is not None else "-",
                                not_converged(row, "liveswap"), not_converged(floor, "floor"))
        ratio = "%.2f×" % (mine / base) if mine is not None and base else "-"
        load = "%.1f" % row["loadavg"][0] if "loadavg" in row else "?"
        if "error" in row:
            out.append("| %d | %s | %s | %s | %s | did not run: %s |||||| %s |" % (
                row["workers"], row["strategy"], row.get("clients", "?"), step, ratio, row["error"], load))
            continue
        walls = [u["wall_s"] for u in row["upgrades"]]
        n = max(1, len(row["upgrades"]))
        out.append("| %d | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s | %d | %.0f | %s |" % (
            row["workers"], row["strategy"], row.get("clients", "?"), step, ratio, seconds(row["start_s"]),
            seconds(median(walls)), seconds(max(walls)), row["load"]["failed"], row["load"]["requests"],
            mib(row["rss_kib"]), row["fds"], 1000.0 * row["cpu_s"] / n, load))
    return "\n".join(out)


def soak_table(results):
    row = results["soak"]
    if not row:
        return "Not run."
    if "error" in row:
        return "Did not run: %s" % row["error"]
    return "\n".join([
        "| upgrades | failed upgrades | failed requests / requests | time per upgrade (ms) | "
        "supervisor fds start → end | supervisor RSS start → end (MiB) | supervisor CPU per upgrade (ms) |",
        "|---|---|---|---|---|---|---|",
        "| %d | %d | %s / %s | %.0f | %d → %d | %s → %s | %.1f |" % (
            row["upgrades"], row["failed_upgrades"], row["load"]["failed"], row["load"]["requests"],
            1000.0 * row["seconds"] / row["upgrades"], row["fds_start"], row["fds_end"],
            mib(row["rss_kib_start"]), mib(row["rss_kib_end"]), 1000.0 * row["cpu_s"] / row["upgrades"])])


# ---- where liveswap is behind ----

# figure: (label, lower is better, noise floor in the figure's unit, why liveswap may be behind)
COMPARED = {
    "per_100k": ("failed requests per 100k", True, 0.5,
                 "every failure is listed by kind in the table; liveswap's listening socket never closes, so "
                 "a failure there is a bug to report"),
    "up_p99": ("p99 latency in upgrade windows", True, 2000,
               "a window holds the CPU burst of the upgrade itself (the client command, fork and exec of new "
               "workers, which compete with the load for the 2 CPUs); with the instant app a liveswap window "
               "is that burst alone (tens of ms), while a tool whose window lasts seconds of mostly idle "
               "waiting dilutes the same burst into a lower p99"),
    "up_max": ("max latency in upgrade windows", True, 5000,
               "the slowest request of a window is one that waited for CPU while workers were forked; on a "
               "shared 2-CPU machine this is noise of a few ms"),
    "st_p99": ("p99 latency in steady state", True, 2000,
               "liveswap is not in the data path (workers accept from the socket directly): steady-state "
               "differences are noise of the shared 2-core machine"),
    "throughput": ("throughput vs the app alone", False, 0.05,
                   "liveswap is not in the data path (workers accept from the socket directly), so what is "
                   "left is run-to-run noise and the worker count: liveswap runs 2 workers where systemd and "
                   "Server::Starter run 1 process, and on 2 CPUs shared with the load generator 2 workers "
                   "switch more than 1 does. PM2's daemon hands out every connection itself"),
    "wall": ("upgrade wall time", True, 0.1,
             "liveswap does not finish an upgrade before every new worker is ready and every old one has "
             "drained; rolling batch 1 does that one worker at a time (about workers × start-up time). Tools "
             "that stop the old code before the new one is ready finish sooner and make clients wait or "
             "fail instead"),
    "rss": ("supervisor RSS", True, 1024,
            "liveswap's RSS is mostly libsystemd (sd-event, sd-bus) and glibc"),
    "cpu_pct": ("supervisor CPU", True, 1.0,
                "liveswap forks workers and answers D-Bus calls during upgrades; between upgrades it sleeps"),
    "wakeups": ("idle wake-ups", True, 5,
                "liveswap arms no periodic timer; its wake-ups are child exits and notify messages"),
}


def behind(results):
    """Every figure on which a peer beats a liveswap variant by more than the noise floor,
    variant by variant, with the reason."""
    sections = []
    for key, (label, lower, floor, why) in COMPARED.items():
        items = []
        for mode, title in MODES:
            rows = [r for r in results["scenarios"] if r["mode"] == mode and "error" not in r and r["upgrades"]]
            peers = [(r, figures(r, results)[key]) for r in rows if not r["key"].startswith("liveswap")]
            for r in rows:
                if not r["key"].startswith("liveswap"):
                    continue
                mine = figures(r, results)[key]
                if mine is None:
                    continue
                better = [(p, v) for p, v in peers
                          if v is not None and (v < mine - floor if lower else v > mine + floor)]
                if better:
                    items.append("  - %s, %s: %s; better: %s" % (
                        title.lower(), r["label"], show(key, mine),
                        ", ".join("%s %s" % (p["label"], show(key, v)) for p, v in better)))
        if items:
            sections.append("- **%s**. Why: %s.\n%s" % (label, why, "\n".join(items)))
    return "\n".join(sections) or ("- On no figure of this run is a peer better than any liveswap variant by "
                                   "more than the noise floor.")


def show(key, v):
    if key.startswith(("up_", "st_")):
        return "%s ms" % ms(v)
    if key == "wall":
        return "%s s" % seconds(v)
    if key == "rss":
        return "%s MiB" % mib(v)
    if key == "cpu_pct":
        return "%.1f%%" % v
    if key == "throughput":
        return "%.2f" % v
    return "%.1f" % v


# ---- observations that need no judgement ----

def observations(results):
    out = []
    for r in results["scenarios"]:
        if "error" in r:
            continue
        failed = [i + 1 for i, u in enumerate(r["upgrades"]) if not (u["ok"] and u["converged"])]
        if failed:
            first = r["upgrades"][failed[0] - 1]
            out.append("- %s (%s start): upgrade %s did not complete (%s); requests failed from then on: %s." % (
                r["label"], "1.5 s" if r["mode"] == "slow" else "instant", ", ".join(map(str, failed)),
                first["message"] or "the new version never answered", failures_text(r["steady"]["failures"])
                if r["steady"]["failures"] else "none"))
    return "\n".join(out)


def commands(results):
    seen, out = set(), []
    for r in results["scenarios"]:
        if r["key"] in seen or not r.get("commands"):
            continue
        seen.add(r["key"])
        out.append("- %s: %s" % (r["label"], "; then per upgrade: ".join("`%s`" % c for c in r["commands"])))
    return "\n".join(out)


def write(results, results_dir, out_dir):
    m, p = results["machine"], results["params"]
    quick = results["profile"] == "quick"
    ready = results["start_to_ready"]
    plots = plot(results, results_dir, out_dir)
    ready_text = ", ".join("%s app %s: %.2f s" % ("C" if k.startswith("c") else "Node",
                                                  "1.5 s start" if not k.endswith("-0") else "instant", v)
                           for k, v in sorted(ready.items()))
    text = """# liveswap side by side: results

Generated by `{command}` on {date} in {minutes:.1f} min{quick}.
Machine: {nproc} CPUs ({cpu}), {memory} GiB, Linux {kernel}, {distro}; load average at start {load}.{busy}
Versions: {liveswap} (built {buildtype}); {systemd}; Server::Starter {start_server}; Node {node}; PM2 {pm2}.

Every number below comes from this one run on this one machine; ratios are against the
app alone measured in the same run. Do not compare absolute numbers across machines.

## What is measured

- **The app**: the same C worker (`examples/httpd.c`) under every tool except PM2, which
  runs the Node example (`examples/node/server.js`) and is compared with the Node app alone.
  Each scenario runs twice: the app ready at once, and the app needing {slow:.1f} s of
  start-up before it accepts anything (`--delay-start`, `START_DELAY_MS`). The worker's own
  start-to-ready time, measured here under `systemd-socket-activate`: {ready}.
- **The load**: `tests/tools/loadgen` with {clients} concurrent clients, half keep-alive and
  half a new connection per request, timeout 10 s. Every outcome is counted in its own class
  (ok, refused, reset, eof = closed before a response, timeout, bad_status, bad_response,
  connect_error). Two more are counted apart from both ok and failed: a kept-alive
  connection the server closed without `Connection: close` that loadgen notices before
  reusing it (it reconnects), and the keep-alive race (the server closes the connection
  just as the next request is written; loadgen retries the request once, and counts it as
  **retried** even when the retry is answered). loadgen copes with both, as clients that
  check and retry do; a client that does neither (wrk, or any POST) gets a socket error
  for each. Both are shown next to the failures.
- **Upgrades**: {upgrades} per scenario, {gap} s apart, after {steady} s of steady load. A
  new version is deployed the way deploy tools do it (a `current` symlink repointed), then
  the tool's own upgrade command runs. An **upgrade window** lasts from the command's start
  until the new version answers and no process of the old version is left (the last
  old process's exit is seen through a pidfd, as it happens; /proc is read once more to
  check); its length is the **upgrade wall time**. A request belongs to the window its life overlaps, otherwise to
  steady state. Throughput is ok requests per second of steady state.
- **Supervisor cost**: RSS and CPU time of the supervising process (from `/proc`), and its
  wake-ups (voluntary + involuntary context switches of all its threads) over {idle} s of
  idle after the load stopped.
- liveswap and PM2 run {workers} workers; systemd, Server::Starter and the app alone run one
  process (that is what they supervise); loadgen shares the same {nproc} CPUs.
- **A quiet machine**: the run starts only when the 1-minute load average is at most
  {busy_threshold:g} ({busy_per_cpu:g} per CPU); `bench/run` waits up to {quiet_wait} s for that (its own
  build loads the machine) and refuses to run otherwise. `bench/run --busy` measures anyway,
  and then every table says it was measured on a busy machine. Each scale row shows the
  load average at its own start: a record, not that check, since it holds the bench's own
  earlier scenarios (1,024 workers and their load alone make a 1-minute load average of
  30 to 60 on 2 CPUs).

## {slow_title}

{busy_note}{slow_table}

## {instant_title}

{busy_note}{instant_table}

## Latency percentiles

Every request of a scenario's steady state, and every request of its upgrade windows
taken together, in ms (the per-window figures are in `bench/out/results.json`).

{busy_note}{percentiles_table}

{plots}

## What clients saw during upgrades

Medians over the upgrades, in seconds from the upgrade command's start. "Old version last
answered" after "new version first answered" is the time both ran side by side.

{busy_note}{clients_table}

## Supervisor cost (app ready at once)

{busy_note}{cost_table}

Idle wake-ups of the supervisor with the worker health checks (liveswap(8), WORKER
HEALTH) off and on, {workers} workers of the C app and no load, over {idle_health} s:
the watchdog costs one wake-up per `WATCHDOG=1` (the app pings at half the interval),
`memory_max` one sample a second; with both off there is no timer at all.

{busy_note}{idle_health_table}

## liveswap at scale

Upgrades of the instant app with no load and under load ({scale_loads} clients),
{scale_upgrades} per size{scale_upgrades_small}, with `stable_time = 0`: this measures spawning, not the
canary's 1 s wait (which the scenarios above include, as liveswap's default). Each
point is measured twice in a row, by liveswap and by the floor (`bench/floor.c`: fork,
exec of the same wrapper, `READY=1`, `SIGTERM`, and nothing else, driven by the same
`current` symlink, started by the same SIGHUP (for liveswap the reload that `liveswap -u`
asks for too, without a client process's start-up) and timed by the same test: no old
worker left and the new version answering). A step is one worker replaced: the upgrade's median wall time divided by N,
for blue-green too. The ratio is liveswap's step over the floor's (goal: at most 1.2).

{busy_note}{scale_table}

{scale_plot}

## Soak

{soak_n} upgrades back to back (rolling, {workers} workers, alternating two releases,
`stable_time = 0`) under load ({soak_clients} clients).

{busy_note}{soak_table}

## Where liveswap is behind

{behind}

{observations}

## Exact commands

- Everything: `{command}` (installs the peers, builds, runs, writes this file and the plots).
{commands}

## Notes

- PM2 cannot pass an inherited socket to cluster workers: its daemon listens on the port
  through `node:cluster` and hands each connection to a worker, so the Node example listens
  on `PORT` under PM2 (and on `LISTEN_FDS` everywhere else). PM2 reloads one worker at a
  time and waits for it to listen (or `listen_timeout`, 3 s), then sends SIGINT to the old
  one.
- Server::Starter does not know when the new worker is ready: it waits `--interval`
  (1 s by default) and then signals the old one, whatever the new one's state.
- `systemctl restart` stops the old process before starting the new one; connections queue
  in the socket unit's backlog meanwhile. systemd's default start limit (5 starts in 10 s)
  turns a quick series of restarts into a failed service whose socket is closed.
- A client whose request failed tries again after 10 ms, as the load generator's clients
  are closed-loop: an outage of T seconds costs about {clients} × T / 10 ms failed requests,
  so compare failure counts between rows, not with real traffic.
- Per-window numbers (every upgrade window's percentiles, failures and versions) and the
  raw loadgen reports are in `bench/out/results.json` after a run.
- The systemd scenarios run a private `systemd --user` manager (tests/systemd/manager.py,
  shared with the systemd tests), not PID 1; the "supervisor" of the plain systemd rows is that manager.
{skipped}
""".format(
        command=results["command"], date=results.get("date") or datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        minutes=results.get("seconds", 0) / 60.0,
        quick=" (quick mode: {} upgrades per scenario, short runs; the full mode is `bench/run`)".format(
            p["upgrades"]) if quick else "",
        nproc=m["nproc"], cpu=m["cpu"], memory=m["memory_gib"], kernel=m["kernel"], distro=m["distro"],
        load=" ".join(str(x) for x in m["load"]),
        busy_note=busy_note(m), busy_threshold=m["busy_threshold"],
        busy_per_cpu=m["busy_threshold"] / max(1, m["nproc"]), quiet_wait=QUIET_WAIT_TEXT,
        scale_plot=plot_scale_cpu(results, results_dir, out_dir),
        busy=("\n\n**Busy machine**: the 1-minute load average at start was above {:g} ({} CPUs × {:g}): "
              "other work competed with this run, so its times are not those of a quiet machine.\n".format(
                  m["busy_threshold"], m["nproc"], m["busy_threshold"] / max(1, m["nproc"]))
              if m.get("busy") else ""), liveswap=m["liveswap"], buildtype=m.get("buildtype", "unknown"), systemd=m["systemd"], start_server=m["start_server"],
        node=m["node"], pm2=m["pm2"], slow=results["slow_start_ms"] / 1000.0, ready=ready_text or "not measured",
        clients=p["clients"], upgrades=p["upgrades"], gap=p["gap"],
        steady=p["steady_pre"], idle=p["idle"], workers=p["workers"],
        slow_title=MODES[0][1], instant_title=MODES[1][1],
        slow_table=main_table(results, "slow"), instant_table=main_table(results, "instant"),
        percentiles_table=percentiles_table(results),
        plots=plots, clients_table=clients_table(results), cost_table=cost_table(results),
        idle_health_table=idle_health_table(results), idle_health=p.get("idle_health", "?"),
        scale_loads=" and ".join(str(c) for c in p.get("scale_loads", (p.get("scale_clients", 16),)) if c),
        scale_upgrades=p["scale_upgrades"], scale_upgrades_small=small_upgrades(results, p["scale_upgrades"]), scale_table=scale_table(results), soak_n=p["soak_upgrades"],
        soak_clients=p["soak_clients"], soak_table=soak_table(results), behind=behind(results),
        observations=("Upgrades that did not complete:\n\n" + observations(results)) if observations(results)
        else "", commands=commands(results),
        skipped="\n".join("- Skipped %s: %s." % (s["what"], s["why"]) for s in results["skipped"]))
    with open(os.path.join(results_dir, "RESULTS.md"), "w") as f:
        f.write(text)


# ---- plots ----

def plot(results, results_dir, out_dir):
    if not shutil.which("gnuplot"):
        return "(gnuplot is not installed: no plots.)"
    links = []
    for mode, title in MODES:
        rows = [r for r in results["scenarios"] if r["mode"] == mode and "error" not in r and r.get("series_file")]
        if not rows:
            continue
        png = os.path.join(results_dir, PLOTS[mode])
        script = os.path.join(out_dir, "plot-%s.gp" % mode)
        with open(script, "w") as f:
            f.write(gnuplot_script(rows, png, title))
        r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
        if r.returncode != 0:
            print("report: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)
            continue
        links.append("![%s: request latency over time](%s)" % (title, PLOTS[mode]))
    if not links:
        return ""
    return ("## Latency over time\n\nEach panel is one tool: latency in ms (log scale) over the run's time in "
            "seconds; the median (blue) and the slowest (red) request that ended in each 100 ms, failed "
            "requests per 100 ms (orange bars, right axis), upgrade windows shaded. A gap in the lines "
            "is time in which no request ended: a stall.\n\n" + "\n\n".join(links))


def plot_scale_cpu(results, results_dir, out_dir):
    """Supervisor CPU time per upgrade against N: one line per strategy and load for
    liveswap, dashed for the floor harness at the same points. Log-log, so that CPU
    proportional to N is a line of slope 1 (the dotted reference)."""
    series = {}
    for row in results.get("scale", []):
        if "error" in row or not row["upgrades"] or row.get("cpu_s") is None:
            continue
        key = (row.get("tool", "liveswap"), row["strategy"], row.get("clients", 0))
        series.setdefault(key, []).append((row["workers"], 1000.0 * row["cpu_s"] / len(row["upgrades"])))
    if not series:
        return ""
    if not shutil.which("gnuplot"):
        return "(gnuplot is not installed: no plot of CPU per upgrade.)"
    data = os.path.join(out_dir, "scale-cpu.dat")
    keys = sorted(series, key=lambda k: (k[0] != "liveswap", k[1], k[2]))
    with open(data, "w") as f:
        for tool, strategy, clients in keys:
            f.write("# %s %s %d clients: workers cpu_ms_per_upgrade\n" % (tool, strategy, clients))
            for n, cpu in sorted(series[(tool, strategy, clients)]):
                f.write("%d %.3f\n" % (n, max(cpu, 0.01)))
            f.write("\n\n")
    ns = [n for points in series.values() for n, _ in points]
    mid = sorted(p for points in series.values() for p in points if p[0] == max(ns))
    slope = mid[len(mid) // 2][1] / max(ns) if mid else 1.0
    plots = []
    # The floor in the colour of liveswap's line for the same strategy and load.
    colours = ["#1f4fbf", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    pairs = sorted({(strategy, clients) for _, strategy, clients in keys})
    for i, (tool, strategy, clients) in enumerate(keys):
        style = "dt 2 lw 1" if tool == "floor" else "lw 2"
        colour = colours[pairs.index((strategy, clients)) % len(colours)]
        plots.append("'%s' index %d using 1:2 with linespoints pt 7 %s lc rgb '%s' title '%s, %s, %s'" % (
            data, i, style, colour, tool, strategy, "%d clients" % clients if clients else "no load"))
    plots.append("%g * x with lines dt 3 lc rgb '#808080' title 'proportional to N'" % slope)
    png = os.path.join(results_dir, SCALE_CPU_PLOT)
    script = os.path.join(out_dir, "plot-scale-cpu.gp")
    with open(script, "w") as f:
        f.write("\n".join([
            "set terminal pngcairo size 900,520 font 'sans,9'", "set output '%s'" % png,
            "set title 'Supervisor CPU time per upgrade against the number of workers' noenhanced",
            "set logscale xy", "set format y '%g'", "set xlabel 'workers (N)'", "set ylabel 'ms of CPU per upgrade'",
            "set xrange [%g:%g]" % (min(ns) / 1.5, max(ns) * 1.5), "set grid", "set key top left font ',8'",
            "plot " + ", ".join(plots)]) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        print("report: gnuplot failed: %s" % r.stderr.strip(), file=sys.stderr)
        return ""
    return ("Supervisor CPU time per upgrade (user + system, from `/proc`) against N, log-log: "
            "a line parallel to the dotted one grows in proportion to N. The floor's is its own "
            "process's.\n\n![Supervisor CPU per upgrade against N](%s)" % SCALE_CPU_PLOT)


def gnuplot_script(rows, png, title):
    height = 215
    lines = [
        "set terminal pngcairo size 1100,%d font 'sans,9'" % (60 + height * len(rows)),
        "set output '%s'" % png,
        "set multiplot layout %d,1" % len(rows),
        "set logscale y", "set yrange [0.05:20000]", "set format y '%g'",
        "set ytics nomirror", "set ylabel 'ms' offset 2,0",
        "set grid ytics", "set key top left horizontal font ',8'", "set tmargin 2.5", "set bmargin 2",
        "set style fill solid 0.25 noborder",
    ]
    for r in rows:
        lines.append("unset object")
        for i, (a, b) in enumerate(r.get("windows_rel_s", [])):
            lines.append("set object %d rect from %.3f, graph 0 to %.3f, graph 1 "
                         "fc rgb '#d0d0ff' fs solid noborder behind" % (i + 1, a, b))
        failed = int(r["load"]["failed"])
        lines.append("set title \"%s, %d upgrades: %d failed requests, max %s ms\" noenhanced" % (
            r["label"], len(r["upgrades"]), failed,
            ms(max(r["steady"]["max_us"], r["upgrade"]["max_us"]))))
        data = r["series_file"]
        most = most_failed(data)
        lines.append("set y2range [0:%d]" % max(1, most))
        lines.append("set y2tics nomirror" if most else "unset y2tics")
        lines.append("plot '%s' using 1:5 axes x1y2 with boxes lc rgb '#ff9900' title 'failed', "
                     "'' using 1:2 with linespoints pt 7 ps 0.2 lc rgb '#1f4fbf' title 'p50', "
                     "'' using 1:4 with linespoints pt 7 ps 0.3 lc rgb '#d62728' title 'max'" % data)
    lines.append("unset multiplot")
    return "\n".join(lines) + "\n"


def most_failed(series_file):
    most = 0
    with open(series_file) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                most = max(most, int(line.split()[4]))
    return most


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "bench", "out", "results.json")
    with open(path) as f:
        results = json.load(f)
    write(results, os.path.join(root, "bench"), os.path.dirname(os.path.abspath(path)))
    print("report: wrote %s" % os.path.join(root, "bench", "RESULTS.md"))


if __name__ == "__main__":
    main()
