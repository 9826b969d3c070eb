#!/usr/bin/python3
"""Interleaved MCP client and timing runner for bench/proxy.sh: `mcp-j run` (proxy) against
`mcp-j exec` (same sandbox, stdio passed straight through) around the same fast server.
Standard library only, so the system /usr/bin/python3 runs it without anything installed.

Every measured process is `timeout -k 5 TIMEOUT mcp-j {run|exec} … -- SERVER`; the mcp-j
process is found as timeout's child, and its own peak RSS (VmHWM) and CPU time (the sum over
its threads' schedstat) are read from /proc just before its stdin is closed, i.e. after the
last reply arrived and before it exits. Each run starts with an MCP handshake (initialize,
notifications/initialized), which also waits out the sandbox start-up; the clock starts
after it.

Tests (see bench/README.md for how to read the output):
  throughput  a writer thread pipelines N pings (in writes of up to 64 KiB, at most WINDOW
              in flight) while the main thread reads; msg/s = N / (first write .. last
              reply). Replies are checked after the
              clock stops: exactly N, one per id, each a `{}` result.
  latency     one ping at a time (write, read until the newline), after a warm-up; p50/p99
              of the round trip. Each reply is compared byte for byte.
  flood       the server answers each of COUNT tools/call requests with a result of BYTES
              bytes as fast as it can, while the client reads slowly (CHUNK bytes, then a
              sleep); the proxy must hold back, not buffer. Each reply's id, head and length
              are checked.
  large       pipelined large messages both ways: a writer thread sends N_LARGE tools/call
              with an argument of LARGE_BYTES bytes (at most WINDOW in flight) while the
              main thread reads the N_LARGE results of LARGE_BYTES bytes; every pipe fills,
              so a proxy whose directions wait on each other stalls here (and the run fails
              at its timeout). msg/s = N_LARGE / (first write .. last reply); each reply's
              id (in order) and length are checked as it arrives.

Exits non-zero if any mcp-j invocation fails (non-zero status, timeout) or a reply is
missing, duplicated or wrong.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

VARIANTS = ("run", "exec")
PROTOCOL = "2025-06-18"
INIT = (b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"'
        + PROTOCOL.encode() + b'","capabilities":{},'
        b'"clientInfo":{"name":"mcp-j-bench","version":"0"}}}\n'
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
WRITE_CHUNK = 64 * 1024


class Failure(Exception):
    pass


def ping(i):
    return b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n' % i


def pong(i):
    return b'{"jsonrpc":"2.0","id":%d,"result":{}}\n' % i


def find_child(ppid, exe, deadline=5.0):
    """The pid of ppid's child once it runs `exe` (timeout forks, then execs mcp-j)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with open(f"/proc/{ppid}/task/{ppid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            kids = []
        for k in kids:
            try:
                if os.path.realpath(f"/proc/{k}/exe") == exe:
                    return k
            except OSError:
                pass
        time.sleep(0.0005)
    raise Failure(f"cannot find the mcp-j process under pid {ppid}")


def proc_stats(pid):
    """{hwm: VmHWM in KiB, cpu: CPU ns summed over the live threads, threads} of pid."""
    hwm = threads = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    cpu = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                cpu += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return {"hwm": hwm, "cpu": cpu, "threads": threads}


class Server:
    """One `timeout … mcp-j {run|exec} … -- SERVER` with pipes on its stdin and stdout."""

    def __init__(self, o, variant, label, server_args=()):
        self.o, self.variant, self.label = o, variant, label
        self.errpath = os.path.join(o.workdir, f"stderr-{label}-{variant}.log")
        self.err = open(self.errpath, "wb")
        argv = ["timeout", "-k", "5", str(o.timeout), o.mcpj, variant,
                "--ro", o.ro, "--workdir", o.workdir, "--", o.server, *server_args]
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err, bufsize=0)
        self.w = self.p.stdin.fileno()
        self.r = self.p.stdout.fileno()
        self.pid = find_child(self.p.pid, os.path.realpath(o.mcpj))
        self.rest = b""

    def fail(self, msg):
        self.kill()
        tail = b""
        try:
            with open(self.errpath, "rb") as f:
                tail = f.read()[-2000:]
        except OSError:
            pass
        raise Failure(f"{self.label}/{self.variant}: {msg}\n  command: {' '.join(self.argv)}\n"
                      f"  its stderr (tail): {tail.decode(errors='replace')}")

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)  # timeout made its own process group
            except OSError:
                self.p.kill()
            self.p.wait()

    def write_all(self, data):
        mv = memoryview(data)
        while mv:
            n = os.write(self.w, mv[:WRITE_CHUNK])
            mv = mv[n:]

    def read_line(self):
        """One line (with its newline) or b'' at end of file."""
        while True:
            i = self.rest.find(b"\n")
            if i >= 0:
                line, self.rest = self.rest[:i + 1], self.rest[i + 1:]
                return line
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                line, self.rest = self.rest, b""
                return line
            self.rest += chunk

    def handshake(self):
        self.write_all(INIT)
        while True:
            line = self.read_line()
            try:
                msg = json.loads(line)
            except ValueError:
                ok = False
                break
            if "id" not in msg:
                continue  # a notification (real servers send some while starting)
            ok = msg.get("id") == 0 and "result" in msg
            break
        if not ok:
            self.fail(f"bad initialize reply: {line[:200]!r}")

    def finish(self):
        """Sample VmHWM/CPU, close stdin, expect nothing more and exit status 0."""
        try:
            stats = proc_stats(self.pid)
        except OSError as e:
            self.fail(f"mcp-j had exited before the end of the test ({e})")
        os.close(self.w)
        self.p.stdin = None  # closed above
        extra = self.rest
        while True:
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                break
            extra += chunk
        try:
            rc = self.p.wait(timeout=self.o.timeout)
        except subprocess.TimeoutExpired:
            self.fail("did not exit after its stdin was closed")
        if extra:
            self.fail(f"unexpected output after the last reply: {extra[:200]!r}")
        if rc != 0:
            self.fail(f"exit status {rc}" + (" (timed out)" if rc in (124, 137) else ""))
        self.err.close()
        os.unlink(self.errpath)
        return stats


class PipelinedWriter:
    """A thread that writes `batches` (bytes, one request a line) to the server while the
    caller reads the replies; with a window, a write waits until it would not take more
    than `window` requests in flight. The caller reports its count of replies with
    `replied`, then `stop`s (all replies, or end of file: the writer gives up) and
    `finish`es."""

    def __init__(self, s, batches, window):
        self.s, self.batches, self.window = s, batches, window
        self.lock = threading.Condition()
        self.received = 0
        self.done = False
        self.error = None
        self.thread = threading.Thread(target=self.write, daemon=True)

    def write(self):
        try:
            sent = 0
            for data in self.batches:
                k = data.count(b"\n")
                if self.window:
                    with self.lock:
                        while sent + k - self.received > self.window and not self.done:
                            self.lock.wait()
                if self.done:
                    return
                self.s.write_all(data)
                sent += k
        except OSError as e:
            self.error = e

    def start(self):
        self.thread.start()

    def replied(self, count):
        if self.window:
            with self.lock:
                self.received = count
                self.lock.notify()

    def stop(self):
        with self.lock:
            self.done = True
            self.lock.notify()

    def finish(self, timeout):
        self.thread.join(timeout=timeout)
        if self.error:
            self.s.fail(f"writing requests failed: {self.error}")


def throughput(o, variant, n, profile=None):
    s = Server(o, variant, f"tp{n}")
    s.handshake()
    # Requests go out in writes of `per` pings (about 64 KiB); with a window, a write waits
    # until it would not take more than `window` requests in flight.
    per = WRITE_CHUNK // len(ping(n))
    if o.window:
        per = max(1, min(per, o.window // 4))
    writes = [b"".join(ping(i) for i in range(j, min(n, j + per - 1) + 1))
              for j in range(1, n + 1, per)]
    writer = PipelinedWriter(s, writes, o.window)
    perf = None
    if profile:
        perf = subprocess.Popen([*profile.split(), "-p", str(s.pid)],
                                stdout=sys.stderr, stderr=sys.stderr)
        time.sleep(1.0)  # let it attach
    chunks = []
    lines = 0
    t0 = time.perf_counter_ns()
    writer.start()
    while lines < n:
        chunk = os.read(s.r, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
        lines += chunk.count(b"\n")
        writer.replied(lines)
    t1 = time.perf_counter_ns()
    writer.stop()
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=o.timeout)
    writer.finish(o.timeout)
    if lines < n:
        s.fail(f"only {lines} of {n} replies before end of file")
    stats = s.finish()
    data = b"".join(chunks)
    replies = data.split(b"\n")
    if replies[-1] != b"" or len(replies) != n + 1:
        raise Failure(f"tp{n}/{variant}: {len(replies) - 1} lines for {n} requests")
    seen = bytearray(n + 1)
    in_order = True
    for k, line in enumerate(replies[:-1]):
        if line + b"\n" == pong(k + 1):
            i = k + 1
        else:
            in_order = False
            try:
                msg = json.loads(line)
                i = msg["id"]
                if msg.get("jsonrpc") != "2.0" or msg.get("result") != {} or type(i) is not int:
                    raise ValueError
                if not 1 <= i <= n:
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                hint = ""
                if b"too many requests pending" in line:
                    hint = (" (the proxy answers requests beyond its 4096 pending with this "
                            "error: keep WINDOW at or under 4096)")
                raise Failure(f"tp{n}/{variant}: bad reply {line[:200]!r}{hint}")
        if seen[i]:
            raise Failure(f"tp{n}/{variant}: id {i} answered twice")
        seen[i] = 1
    return {"rate": n / ((t1 - t0) / 1e9), "in_order": in_order, **stats}


def latency(o, variant):
    s = Server(o, variant, "lat")
    s.handshake()
    r, w = s.r, s.w
    out = []
    total = o.lat_warmup + o.lat_n
    clock = time.perf_counter_ns
    for i in range(1, total + 1):
        req, want = ping(i), pong(i)
        t0 = clock()
        os.write(w, req)
        got = os.read(r, 1 << 16)
        while not got.endswith(b"\n"):
            more = os.read(r, 1 << 16)
            if not more:
                break
            got += more
        t1 = clock()
        if got != want:
            s.fail(f"ping {i}: got {got[:200]!r}, want {want!r}")
        if i > o.lat_warmup:
            out.append(t1 - t0)
    return {"rtts": out, **s.finish()}


def flood(o, variant, count):
    s = Server(o, variant, f"flood{count}", ["--result-bytes", str(o.flood_bytes)])
    s.handshake()
    reqs = b"".join(
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"fill","arguments":{}}}\n'
        % i for i in range(1, count + 1))
    s.write_all(reqs)
    head_len = 64
    want_len = {}
    for i in range(1, count + 1):
        body = (b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"' % i)
        want_len[i] = len(body) + o.flood_bytes + len(b'"}]}}')
    got = 0
    cur_len, cur_head = 0, b""
    since = 0
    t0 = time.perf_counter_ns()
    while got < count:
        chunk = os.read(s.r, 1 << 20)
        if not chunk:
            s.fail(f"end of file after {got} of {count} replies")
        pos = 0
        while True:
            nl = chunk.find(b"\n", pos)
            part = chunk[pos:] if nl < 0 else chunk[pos:nl]
            if len(cur_head) < head_len:
                cur_head += part[:head_len - len(cur_head)]
            cur_len += len(part)
            if nl < 0:
                break
            got += 1
            want = b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"x' % got
            if not cur_head.startswith(want[:head_len]) or cur_len != want_len[got]:
                s.fail(f"reply {got}: head {cur_head!r}, {cur_len} bytes (want {want_len[got]})")
            cur_len, cur_head = 0, b""
            pos = nl + 1
        since += len(chunk)
        if o.flood_sleep and since >= o.flood_chunk:
            time.sleep(o.flood_sleep)
            since = 0
    t1 = time.perf_counter_ns()
    stats = s.finish()
    mib_s = count * o.flood_bytes / 2**20 / ((t1 - t0) / 1e9)
    return {"mib_s": mib_s, **stats}


def large(o, variant, n):
    s = Server(o, variant, f"large{n}", ["--result-bytes", str(o.large_bytes)])
    s.handshake()
    arg = b"y" * o.large_bytes
    per = max(1, WRITE_CHUNK // (o.large_bytes + 100))
    if o.window:
        per = max(1, min(per, o.window // 4))

    def request(i):
        return (b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"fill",'
                b'"arguments":{"text":"%s"}}}\n' % (i, arg))

    # Built as the writer goes: all of them at once would hold N_LARGE x LARGE_BYTES.
    batches = (b"".join(request(i) for i in range(j, min(n, j + per - 1) + 1))
               for j in range(1, n + 1, per))
    writer = PipelinedWriter(s, batches, o.window)

    def reply_len(i):
        return len(b'{"jsonrpc":"2.0","id":%d,"result":{"content":[{"type":"text","text":"' % i) \
            + o.large_bytes + len(b'"}]}}')

    got = 0
    cur = b""
    t0 = time.perf_counter_ns()
    writer.start()
    while got < n:
        chunk = os.read(s.r, 1 << 20)
        if not chunk:
            s.fail(f"end of file after {got} of {n} replies")
        cur += chunk
        while True:
            nl = cur.find(b"\n")
            if nl < 0:
                break
            line, cur = cur[:nl], cur[nl + 1:]
            got += 1
            head = b'{"jsonrpc":"2.0","id":%d,"result":' % got
            if not line.startswith(head) or len(line) != reply_len(got):
                s.fail(f"reply {got}: head {line[:64]!r}, {len(line)} bytes (want {reply_len(got)})")
        writer.replied(got)
    t1 = time.perf_counter_ns()
    writer.stop()
    writer.finish(o.timeout)
    s.rest = cur
    stats = s.finish()
    secs = (t1 - t0) / 1e9
    return {"rate": n / secs, "mib_s": 2 * n * o.large_bytes / 2**20 / secs, **stats}


def pct(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def mib(kib):
    return kib / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcpj", required=True)
    ap.add_argument("--server", required=True, help="the bench server, inside --ro")
    ap.add_argument("--ro", required=True, help="read-only directory holding the server")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--tests", default="tp,lat,flood,large",
                    help="which of tp,lat,flood,large to run")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-small", type=int, default=10_000)
    ap.add_argument("--window", type=int, default=0,
                    help="most requests in flight in the throughput test (0: no limit)")
    ap.add_argument("--lat-n", type=int, default=5000)
    ap.add_argument("--lat-warmup", type=int, default=500)
    ap.add_argument("--flood-rounds", type=int, default=2)
    ap.add_argument("--flood-counts", default="50,200")
    ap.add_argument("--flood-bytes", type=int, default=4 * 2**20)
    ap.add_argument("--flood-chunk", type=int, default=2**20,
                    help="the slow reader sleeps after each this many bytes")
    ap.add_argument("--flood-sleep", type=float, default=0.010)
    ap.add_argument("--n-large", type=int, default=5000)
    ap.add_argument("--large-bytes", type=int, default=20_000)
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--perf-cmd", help="after the tables, profile one extra throughput run of "
                    "`mcp-j run` (N pings) with this command + `-p PID`, e.g. "
                    "'perf record -g -o FILE'; it gets SIGINT after the last reply")
    ap.add_argument("--goal-ratio", type=float, default=0.8)
    ap.add_argument("--goal-p50-us", type=float, default=50.0)
    o = ap.parse_args()
    os.chdir(o.workdir)
    flood_counts = [int(x) for x in o.flood_counts.split(",") if x]
    which = set(o.tests.split(","))
    if not which <= {"tp", "lat", "flood", "large"}:
        ap.error("--tests: use tp, lat, flood and large")

    tests = []
    if "tp" in which:
        tests += [("tp", o.n), ("tp", o.n_small)]
    if "lat" in which:
        tests += [("lat", None)]
    if "large" in which:
        tests += [("large", o.n_large)]
    tp_ns = [a for t, a in tests if t == "tp"]
    floods = flood_counts if "flood" in which and o.flood_rounds else []
    res = {}  # (test, arg, variant) -> list of per-run results

    def run_one(test, arg, variant):
        if test == "tp":
            r = throughput(o, variant, arg)
        elif test == "lat":
            r = latency(o, variant)
        elif test == "large":
            r = large(o, variant, arg)
        else:
            r = flood(o, variant, arg)
        res.setdefault((test, arg, variant), []).append(r)

    def profile():
        if not o.perf_cmd:
            return
        try:
            r = throughput(o, "run", o.n, profile=o.perf_cmd)
        except Failure as e:
            print(f"\nFAILED (profiled run): {e}", file=sys.stderr)
            sys.exit(1)
        print(f"\nprofiled run ({o.perf_cmd} -p <mcp-j run pid>): "
              f"N={o.n:,} at {r['rate']:,.0f} msg/s under perf, mcp-j CPU "
              f"{r['cpu'] / o.n / 1e3:.2f} µs/msg")

    if o.rounds == 0:
        profile()
        return
    t_start = time.monotonic()
    try:
        for t, a in tests:  # warm-up: one of each, not recorded; refuse to time failures
            for v in VARIANTS:
                run_one(t, a, v)
        res.clear()
        for rnd in range(o.rounds):
            round_tests = list(tests)
            if rnd < o.flood_rounds:
                round_tests += [("flood", c) for c in floods]
            k = rnd % len(round_tests)
            round_tests = round_tests[k:] + round_tests[:k]
            order = VARIANTS[rnd % 2:] + VARIANTS[:rnd % 2]
            for t, a in round_tests:
                for v in order:
                    run_one(t, a, v)
            print(f"  round {rnd + 1}/{o.rounds} done ({time.monotonic() - t_start:.0f} s)",
                  file=sys.stderr, flush=True)
    except Failure as e:
        print(f"\nFAILED: {e}", file=sys.stderr)
        sys.exit(1)
    elapsed = time.monotonic() - t_start
    med = statistics.median

    print(f"{o.rounds} interleaved rounds, whole loop {elapsed:.0f} s; every run got exactly one "
          f"correct reply per request (ids checked)")

    if tp_ns:
        print(f"\nthroughput: pipelined pings"
              + (f", at most {o.window} in flight" if o.window else ", no window"))
        print(f"  {'N':>7}  {'variant':<7}{'median msg/s':>14}{'min':>11}{'max':>11}"
              f"{'mcp-j process CPU/msg':>23}")
        ratios = {}
        for n in tp_ns:
            for v in VARIANTS:
                rs = res[("tp", n, v)]
                rates = [r["rate"] for r in rs]
                cpu = med(r["cpu"] for r in rs) / n / 1e3
                order_note = "" if all(r["in_order"] for r in rs) else "  (replies out of order)"
                print(f"  {n:>7}  {v:<7}{med(rates):>14,.0f}{min(rates):>11,.0f}"
                      f"{max(rates):>11,.0f}{cpu:>20,.2f} µs{order_note}")
            run = [r["rate"] for r in res[("tp", n, "run")]]
            exe = [r["rate"] for r in res[("tp", n, "exec")]]
            paired = sorted(a / b for a, b in zip(run, exe))
            ratios[n] = med(run) / med(exe)
            print(f"  {n:>7}  run/exec  ratio of medians {ratios[n]:.4f}"
                  f"  (per-round ratios {paired[0]:.4f}-{paired[-1]:.4f})")
        verdict = "met" if ratios[o.n] >= o.goal_ratio else "NOT met"
        print(f"  goal: run/exec >= {o.goal_ratio} at N={o.n:,}: {verdict} ({ratios[o.n]:.4f})")

    if "lat" in which:
        print(f"\nlatency: one ping at a time, {o.lat_n} per run after {o.lat_warmup} warm-up, "
              f"{o.rounds} runs per variant (percentiles over all {o.rounds * o.lat_n} round trips)")
        print(f"  {'variant':<8}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}"
              f"{'per-run p50 range':>22}{'mcp-j process CPU/ping':>24}")
        lat = {}
        for v in VARIANTS:
            rs = res[("lat", None, v)]
            allr = [x for r in rs for x in r["rtts"]]
            p50s = [pct(r["rtts"], .5) / 1e3 for r in rs]
            lat[v] = allr
            cpu = med(r["cpu"] for r in rs) / (o.lat_n + o.lat_warmup) / 1e3
            print(f"  {v:<8}{pct(allr, .5) / 1e3:7.1f}µs{pct(allr, .9) / 1e3:7.1f}µs"
                  f"{pct(allr, .99) / 1e3:7.1f}µs{pct(allr, .999) / 1e3:7.1f}µs"
                  f"{min(p50s):>12.1f}-{max(p50s):.1f} µs{cpu:>21.2f} µs")
        add50 = (pct(lat["run"], .5) - pct(lat["exec"], .5)) / 1e3
        add99 = (pct(lat["run"], .99) - pct(lat["exec"], .99)) / 1e3
        paired = sorted((pct(a["rtts"], .5) - pct(b["rtts"], .5)) / 1e3
                        for a, b in zip(res[("lat", None, "run")], res[("lat", None, "exec")]))
        print(f"  added by the proxy (run - exec): p50 {add50:+.1f} µs, p99 {add99:+.1f} µs"
              f"  (per-round p50 differences {paired[0]:+.1f} to {paired[-1]:+.1f} µs)")
        verdict = "met" if add50 < o.goal_p50_us else "NOT met"
        print(f"  goal: under {o.goal_p50_us:.0f} µs added at p50: {verdict} ({add50:+.1f} µs)")

    if "large" in which:
        n = o.n_large
        print(f"\npipelined large messages: {n:,} tools/call with a {o.large_bytes:,}-byte argument, "
              f"each answered with a {o.large_bytes:,}-byte result"
              + (f", at most {o.window} in flight" if o.window else ", no window"))
        print(f"  {'variant':<8}{'median msg/s':>14}{'min':>10}{'max':>10}{'MiB/s both ways':>17}"
              f"{'mcp-j process CPU/msg':>23}")
        for v in VARIANTS:
            rs = res[("large", n, v)]
            rates = [r["rate"] for r in rs]
            cpu = med(r["cpu"] for r in rs) / n / 1e3
            print(f"  {v:<8}{med(rates):>14,.0f}{min(rates):>10,.0f}{max(rates):>10,.0f}"
                  f"{med(r['mib_s'] for r in rs):>17,.0f}{cpu:>20,.2f} µs")
        run = [r["rate"] for r in res[("large", n, "run")]]
        exe = [r["rate"] for r in res[("large", n, "exec")]]
        paired = sorted(a / b for a, b in zip(run, exe))
        ratio = med(run) / med(exe)
        print(f"  run/exec  ratio of medians {ratio:.4f}  (per-round ratios {paired[0]:.4f}-{paired[-1]:.4f})")
        verdict = "met" if ratio >= o.goal_ratio else "NOT met"
        print(f"  goal: run/exec >= {o.goal_ratio}: {verdict} ({ratio:.4f}); every run got all "
              f"{n:,} replies (a stall fails the run at its timeout)")

    print(f"\nmemory: peak RSS (VmHWM) of the mcp-j process itself, read just before its stdin "
          f"closes (run: median and max over runs, and its thread count then)")
    print(f"  {'test':<34}{'run median':>11}{'run max':>9}{'threads':>9}{'exec max':>10}"
          f"{'run - exec':>12}")
    rows = [(f"throughput, N={n:,}", ("tp", n)) for n in tp_ns]
    if "lat" in which:
        rows.append((f"latency, {o.lat_n + o.lat_warmup} pings", ("lat", None)))
    if "large" in which:
        rows.append((f"large, {o.n_large:,} x {o.large_bytes / 1000:g} kB each way", ("large", o.n_large)))
    for c in floods:
        rows.append((f"flood {c} x {o.flood_bytes / 2**20:g} MiB, slow reader", ("flood", c)))
    worst = 0.0
    for label, (t, a) in rows:
        rr, re_ = res[(t, a, "run")], res[(t, a, "exec")]
        hm = mib(med(r["hwm"] for r in rr))
        hx = mib(max(r["hwm"] for r in rr))
        th = sorted({r["threads"] for r in rr})
        th = f"{th[0]}-{th[-1]}" if len(th) > 1 else str(th[0])
        ex = mib(max(r["hwm"] for r in re_))
        worst = max(worst, hx)
        print(f"  {label:<34}{hm:>8.1f}MiB{hx:>6.1f}MiB{th:>9}{ex:>7.1f}MiB{hx - ex:>+9.1f}MiB")
    for c in floods:
        rate = {v: med(r["mib_s"] for r in res[("flood", c, v)]) for v in VARIANTS}
        print(f"  flood {c}: the client read {rate['run']:.0f} MiB/s through run, "
              f"{rate['exec']:.0f} MiB/s through exec")
    if len(tp_ns) == 2:
        big = mib(med(r["hwm"] for r in res[("tp", o.n, "run")]))
        small = mib(med(r["hwm"] for r in res[("tp", o.n_small, "run")]))
        print(f"  throughput VmHWM, medians: N={o.n:,} {big:.1f} MiB, N={o.n_small:,} {small:.1f} MiB"
              f" ({big - small:+.1f} MiB)")
    print(f"  highest mcp-j run VmHWM: {worst:.1f} MiB")
    profile()


if __name__ == "__main__":
    main()
