#!/usr/bin/python3
"""Interleaved runner for bench/egress.sh: every round downloads through every route once,
in a rotating order, checks each transfer (HTTP 200, the full size), and prints the tables.
Standard library only, so the system /usr/bin/python3 runs it.

Every command runs in the benchmark's own network namespace (`nsenter -t PID -n -m`), as
root or, with --uid, as that user (setpriv after nsenter, as the egress tests do). Times are
curl's own (`-w`), so the jail's start-up is not in them.
"""

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

# One line per transfer: LABEL http_code size_download time_total speed_download
#                        time_connect time_starttransfer
CURL_W = "%{http_code} %{size_download} %{time_total} %{speed_download} %{time_connect} %{time_starttransfer}\\n"

# The routes inside the jail: curl's options for each. The jail's environment has
# http_proxy/HTTPS_PROXY set by mcp-j (its HTTP proxy); --noproxy '*' makes curl resolve the
# name itself (the DNS stub answers 127.77.x.y) and connect to the jail's direct listener.
JAIL_ROUTES = {
    "proxy": "",
    "connect": '--proxytunnel -x "$HTTPS_PROXY"',
    "stub": "--noproxy '*'",
}


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--pid", required=True, help="the namespace holder's pid")
    p.add_argument("--mcpj", required=True)
    p.add_argument("--also", action="append", default=[],
                   help="LABEL=PATH: another mcp-j binary, bulk routes only, interleaved")
    p.add_argument("--workdir", required=True)
    p.add_argument("--origin", required=True, help="origin.test:PORT")
    p.add_argument("--py-origin", default="", help="ADDRESS:PORT of python3 -m http.server, or empty")
    p.add_argument("--relay-copy", default="", help="ADDRESS:PORT of relay.py copy, or empty")
    p.add_argument("--relay-splice", default="", help="ADDRESS:PORT of relay.py splice, or empty")
    p.add_argument("--big", required=True, help="NAME:BYTES of the bulk file")
    p.add_argument("--small", required=True, help="NAME:BYTES of the memory comparison file")
    p.add_argument("--tiny", required=True, help="NAME:BYTES of the connection-setup file")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--requests", type=int, default=25, help="small requests per route per round")
    p.add_argument("--mem-rounds", type=int, default=3)
    p.add_argument("--uid", type=int)
    p.add_argument("--gid", type=int)
    p.add_argument("--home", default="/tmp")
    p.add_argument("--user", default="root")
    return p.parse_args()


class Bench:
    def __init__(self, a):
        self.a = a
        self.ns = ["nsenter", "-t", a.pid, "-n", "-m", "--"]
        env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", f"HOME={a.home}", "LANG=C.UTF-8"]
        if a.uid is not None:
            self.runner = ["setpriv", f"--reuid={a.uid}", f"--regid={a.gid}", "--init-groups", "--",
                           *env, f"USER={a.user}"]
        else:
            self.runner = env
        self.files = {}
        for spec in (a.big, a.small, a.tiny):
            name, size = spec.split(":")
            self.files[name] = int(size)
        self.big, self.small, self.tiny = (s.split(":")[0] for s in (a.big, a.small, a.tiny))
        self.also = [tuple(x.split("=", 1)) for x in a.also]

    def url(self, name, host=None):
        return f"http://{host or self.a.origin}/{name}"

    def curl_line(self, label, opts, name, host=None, repeat=1):
        """Shell text: `repeat` curl downloads of `name` to /dev/null, each line LABEL FIELDS."""
        one = (f"printf '%s ' {label}; curl -sS -o /dev/null --max-time 60 {opts} "
               f"-w '{CURL_W}' {self.url(name, host)}")
        if repeat == 1:
            return one + "\n"
        return f"i=0; while [ $i -lt {repeat} ]; do {one}; i=$((i+1)); done\n"

    def run(self, argv, stdin_text=None):
        cmd = self.ns + self.runner + argv
        done = subprocess.run(cmd, input=stdin_text, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            sys.exit(f"egress.py: {' '.join(cmd)} exited {done.returncode}\n{done.stderr}")
        return done.stdout

    def jail_argv(self, script, mcpj=None):
        return [mcpj or self.a.mcpj, "exec", "--allow-net", self.a.origin, "--workdir", self.a.workdir,
                "--", "/bin/sh", "-c", "set -eu\n" + script]

    def parse(self, out, results):
        for line in out.splitlines():
            label, code, size, total, speed, connect, start = line.split()
            name = label.split("/")[1]
            if code != "200" or int(size) != self.files[name]:
                sys.exit(f"egress.py: {label}: HTTP {code}, {size} bytes (want 200, {self.files[name]})")
            results.setdefault(label, []).append(
                {"total": float(total), "speed": float(speed), "connect": float(connect),
                 "start": float(start)})

    # --- 1 and 2: throughput and connection setup, interleaved ---

    def rounds(self):
        results = {}
        for r in range(self.a.rounds):
            hosts = [("direct", None), ("py-origin", self.a.py_origin),
                     ("relay-copy", self.a.relay_copy), ("relay-splice", self.a.relay_splice)]
            hosts = [(k, h) for k, h in hosts if k == "direct" or h]
            hosts = hosts[r % len(hosts):] + hosts[:r % len(hosts)]
            outside = "".join(self.curl_line(f"{k}/{self.big}", "", self.big, host=h) for k, h in hosts)
            outside += self.curl_line(f"direct/{self.tiny}", "", self.tiny, repeat=self.a.requests)
            routes = list(JAIL_ROUTES.items())
            routes = routes[r % len(routes):] + routes[:r % len(routes)]
            inside = "".join(self.curl_line(f"{k}/{self.big}", v, self.big) for k, v in routes)
            inside += "".join(self.curl_line(f"{k}/{self.tiny}", v, self.tiny, repeat=self.a.requests)
                              for k, v in routes)
            steps = [(None, outside), (self.a.mcpj, inside)]
            for label, path in self.also:
                steps.append((path, "".join(self.curl_line(f"{k}@{label}/{self.big}", v, self.big)
                                            for k, v in routes)))
            steps = steps[r % len(steps):] + steps[:r % len(steps)]
            for mcpj, script in steps:
                if mcpj is None:
                    out = self.run(["/bin/sh", "-c", "set -eu\n" + script])
                else:
                    out = self.run(self.jail_argv(script, mcpj))
                self.parse(out, results)
            print(f"  round {r + 1}/{self.a.rounds} done", file=sys.stderr)
        return results

    # --- 3: the supervisor's peak RSS against the bytes relayed ---

    def memory(self):
        peaks = {}
        sizes = [None, self.small, self.big]
        for r in range(self.a.mem_rounds):
            for name in sizes[r % 3:] + sizes[:r % 3]:
                script = "".join(self.curl_line(f"{k}/{name}", v, name) for k, v in JAIL_ROUTES.items()) \
                    if name else "true\n"
                peaks.setdefault(name, []).append(self.peak_rss(script))
        return peaks

    def peak_rss(self, script):
        """Runs one jail and samples its supervisor's VmHWM (the mcp-j process: nsenter,
        setpriv and env exec into it, so it keeps the pid) until it exits."""
        cmd = self.ns + self.runner + self.jail_argv(script + "sleep 0.3\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = {"hwm": 0, "comm": "", "cpu": 0}

        def sample():
            while proc.poll() is None:
                try:
                    with open(f"/proc/{proc.pid}/comm") as f:
                        comm = f.read().strip()
                    if comm == "mcp-j":
                        with open(f"/proc/{proc.pid}/status") as f:
                            for line in f:
                                if line.startswith("VmHWM:"):
                                    seen["hwm"] = max(seen["hwm"], int(line.split()[1]) * 1024)
                                    seen["comm"] = comm
                        # Time on CPU of the supervisor's live threads (ns): the egress
                        # thread lives until the jail ends, after the transfers.
                        cpu = 0
                        for task in os.listdir(f"/proc/{proc.pid}/task"):
                            with open(f"/proc/{proc.pid}/task/{task}/schedstat") as f:
                                cpu += int(f.read().split()[0])
                        seen["cpu"] = max(seen["cpu"], cpu)
                except OSError:
                    pass
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        out, err = proc.communicate(timeout=600)
        sampler.join()
        if proc.returncode != 0:
            sys.exit(f"egress.py: memory jail exited {proc.returncode}\n{err}")
        self.parse(out, {})
        if seen["comm"] != "mcp-j":
            sys.exit("egress.py: never saw the mcp-j supervisor's /proc status")
        return seen["hwm"], seen["cpu"]


def q(values, p):
    v = sorted(values)
    return v[int(p * (len(v) - 1))]


def main():
    a = parse_args()
    b = Bench(a)
    big_mb = b.files[b.big] / 1e6
    print(f"rounds:   {a.rounds} (each: {big_mb:.0f} MB once per route, {a.requests} small "
          f"requests per route), memory rounds {a.mem_rounds}")
    results = b.rounds()
    print()
    print(f"1. bulk: {big_mb:.0f} MB of {b.big}, to /dev/null; curl's speed_download (MB/s = 1e6 B/s)")
    print(f"  {'route':54s} {'median':>8s} {'p10':>8s} {'p90':>8s}   {'÷direct':>7s} {'paired':>7s}")
    direct = [x["speed"] for x in results[f"direct/{b.big}"]]
    routes = [("direct", "curl in the namespace, no jail")]
    if a.py_origin:
        routes.append(("py-origin", "same, origin python3 -m http.server"))
    if a.relay_copy:
        routes.append(("relay-copy", "no jail, relay.py copy (64 KiB recv/send)"))
    if a.relay_splice:
        routes.append(("relay-splice", "no jail, relay.py splice (zero-copy)"))
    routes += [("proxy", "jail, HTTP proxy (http_proxy)"),
               ("connect", "jail, CONNECT (--proxytunnel)"),
               ("stub", "jail, DNS stub + direct listener")]
    for label, path in b.also:
        routes += [(f"{k}@{label}", f"jail, {k}, {path.rsplit('/', 1)[-1]}") for k in JAIL_ROUTES]
    for key, desc in routes:
        speeds = [x["speed"] for x in results[f"{key}/{b.big}"]]
        paired = statistics.median(s / d for s, d in zip(speeds, direct))
        print(f"  {key + ': ' + desc:54s} {statistics.median(speeds) / 1e6:8.0f} {q(speeds, 0.1) / 1e6:8.0f} "
              f"{q(speeds, 0.9) / 1e6:8.0f}   {statistics.median(speeds) / statistics.median(direct):7.3f} "
              f"{paired:7.3f}")
    print("  goal: ≥ 0.9× direct for every jail route")
    print()
    n = len(results[f"direct/{b.tiny}"])
    print(f"2. connection setup: {n} sequential requests of {b.tiny} ({b.files[b.tiny]} B) per route, "
          "one curl process each; curl's times (ms)")
    print(f"  {'route':10s} {'connect':>8s} {'1st byte':>8s} {'total':>8s} {'p10':>7s} {'p90':>7s} "
          f"{'mean':>7s}   added (median total − direct's)")
    base = statistics.median(x["total"] for x in results[f"direct/{b.tiny}"])
    for key in ("direct", "proxy", "connect", "stub"):
        xs = results[f"{key}/{b.tiny}"]
        total = [x["total"] * 1000 for x in xs]
        med = statistics.median(total)
        print(f"  {key:10s} {statistics.median(x['connect'] for x in xs) * 1000:8.3f} "
              f"{statistics.median(x['start'] for x in xs) * 1000:8.3f} {med:8.3f} {q(total, 0.1):7.3f} "
              f"{q(total, 0.9):7.3f} {statistics.mean(total):7.3f}   {med - base * 1000:+.3f}")
    print("  goal: < 0.5 ms added per connection")
    print()
    peaks = b.memory()
    print(f"3. the supervisor's peak RSS (VmHWM of the mcp-j process, sampled every 10 ms), "
          f"{a.mem_rounds} jails each: one download per route (3 connections, one after another)")
    hwm = {k: [h for h, _ in v] for k, v in peaks.items()}
    cpu = {k: [c for _, c in v] for k, v in peaks.items()}
    for name in (None, b.small, b.big):
        label = f"{b.files[name] / 1e6:.0f} MB × 3" if name else "no transfer"
        v = hwm[name]
        print(f"  {label:14s} median {statistics.median(v) / 1e6:7.2f} MB  "
              f"(min {min(v) / 1e6:.2f}, max {max(v) / 1e6:.2f});  supervisor CPU "
              f"{statistics.median(cpu[name]) / 1e6:6.1f} ms")
    grow = statistics.median(hwm[b.big]) - statistics.median(hwm[b.small])
    print(f"  {b.big} − {b.small}: {grow / 1e6:+.2f} MB   goal: flat (about 0)")
    relayed = 3 * (b.files[b.big] - b.files[b.small])
    per_gb = (statistics.median(cpu[b.big]) - statistics.median(cpu[b.small])) / 1e6 / (relayed / 1e9)
    print(f"  supervisor CPU per GB relayed: {per_gb:.0f} ms (({b.big} − {b.small}) CPU ÷ bytes)")


if __name__ == "__main__":
    main()
