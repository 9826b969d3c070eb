#!/usr/bin/env python3
"""Load driver for bench/registry.sh (standard library only: threads + http.client).

  registry_load.py http  --url URL --package ORG/NAME --ref REF --clients N --requests R
                         [--verify-every K] [--pid PID] [--label L] --out FILE.json
      N threads, each with its own keep-alive connection, each doing R pull sequences as a
      client of REGISTRY_API.md does them: GET resolve, then the manifest and the bundle by
      the digests in the resolve answer. Bodies are read into a reused buffer and dropped;
      bytes are counted, the manifest is always hashed, the bundle is hashed (sha256) on the
      first sequence of each client and every K-th after it. The threads start together
      (a barrier). With --pid, the server's VmRSS and thread count are sampled every 10 ms
      and its CPU time (utime + stime) is read before and after.
  registry_load.py pulls --mcpj BIN --url URL --ref ORG/NAME@V --clients N --dir DIR
                         [--pid PID] [--label L] --out FILE.json
      N `mcp-j pull` processes at once, each into its own fresh cache DIR/cache-I (removed
      afterwards); each process's wall time and exit status.
  registry_load.py serve DIRECTORY [--sendfile]
      The baseline server: the standard library's http.server (ThreadingHTTPServer,
      SimpleHTTPRequestHandler) on 127.0.0.1, an ephemeral port printed on stdout, serving
      DIRECTORY, set up as the registry is: HTTP/1.1 keep-alive, TCP_NODELAY, a listen backlog of 1024
      (`python3 -m http.server` has 5: 50 clients connecting at once lose SYNs and wait 1-7 s
      for retransmits, which measures the backlog, not the server), no request log. Bodies
      are copied through Python buffers (64 KiB reads and sends), or with --sendfile by
      socket.sendfile (zero-copy: the ceiling of a server on this machine).
  registry_load.py report FILE.json...
      The tables bench/registry.sh prints.

Exits non-zero when a request fails, a status is not 200, a length or digest is wrong, or an
`mcp-j pull` fails: a benchmark of failing requests measures nothing.
"""

import argparse
import hashlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """{'VmRSS': KiB, 'VmHWM': KiB, 'Threads': n} of pid."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def proc_cpu(pid):
    """utime + stime of pid (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Sampler(threading.Thread):
    """Peak VmRSS and thread count of pid, sampled every 10 ms until stop()."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.max_rss = 0
        self.max_threads = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                s = proc_status(self.pid)
            except OSError:
                return
            self.max_rss = max(self.max_rss, s["VmRSS"])
            self.max_threads = max(self.max_threads, s["Threads"])
            self.done.wait(0.01)

    def stop(self):
        self.done.set()
        self.join()


def server_before(pid):
    if not pid:
        return None
    # Reset the peak RSS (VmHWM) to the current RSS: the peak is then this phase's.
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    s = proc_status(pid)
    sampler = Sampler(pid)
    sampler.start()
    return {"rss_before": s["VmRSS"], "threads_before": s["Threads"], "cpu_before": proc_cpu(pid), "sampler": sampler}


def server_after(pid, before):
    if not pid:
        return {}
    sampler = before["sampler"]
    sampler.stop()
    s = proc_status(pid)
    return {
        "rss_before_kib": before["rss_before"],
        "threads_before": before["threads_before"],
        "hwm_kib": s["VmHWM"],
        "rss_peak_sampled_kib": sampler.max_rss,
        "threads_peak": sampler.max_threads,
        "rss_after_kib": s["VmRSS"],
        "cpu_s": proc_cpu(pid) - before["cpu_before"],
    }


class Failure(Exception):
    pass


def get(conn, path, sink, hasher=None):
    """GET path on conn; read the body into sink (a reused buffer); (status, bytes, seconds)."""
    start = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    if resp.status != 200:
        body = resp.read(4096)
        raise Failure(f"GET {path}: {resp.status} {body[:200]!r}")
    length = resp.getheader("Content-Length")
    got = 0
    while True:
        n = resp.readinto(sink)
        if not n:
            break
        got += n
        if hasher is not None:
            hasher.update(sink[:n])
    if length is not None and int(length) != got:
        raise Failure(f"GET {path}: Content-Length {length}, got {got} bytes")
    return got, time.perf_counter() - start


def http_client(args, index, barrier, results):
    host = urllib.parse.urlsplit(args.url)
    org, name = args.package.split("/")
    sink = memoryview(bytearray(256 * 1024))
    small = memoryview(bytearray(64 * 1024))
    mine = results[index]
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    barrier.wait()
    for seq in range(args.requests):
        try:
            start = time.perf_counter()
            # resolve: small JSON; read it whole (it must be parsed).
            t0 = time.perf_counter()
            conn.request("GET", f"/v1/org/{org}/mcps/{name}/resolve?ref={urllib.parse.quote(args.ref)}")
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise Failure(f"resolve: {resp.status} {body[:200]!r}")
            t_resolve = time.perf_counter() - t0
            resolved = json.loads(body)["resolved"]
            mdigest = resolved["manifest"]["digest"]
            bdigest = resolved["bundle"]["digest"]
            bsize = resolved["bundle"]["size_bytes"]
            mh = hashlib.sha256()
            mbytes, t_manifest = get(conn, f"/v1/org/{org}/artifacts/{mdigest}/manifest", small, mh)
            if "sha256:" + mh.hexdigest() != mdigest:
                raise Failure(f"manifest digest mismatch: got sha256:{mh.hexdigest()}, want {mdigest}")
            verify = seq % args.verify_every == 0
            bh = hashlib.sha256() if verify else None
            bbytes, t_bundle = get(conn, f"/v1/org/{org}/artifacts/{bdigest}/bundle", sink, bh)
            if bbytes != bsize:
                raise Failure(f"bundle: {bbytes} bytes, the resolve answer says {bsize}")
            if verify:
                if "sha256:" + bh.hexdigest() != bdigest:
                    raise Failure(f"bundle digest mismatch: got sha256:{bh.hexdigest()}, want {bdigest}")
                mine["verified"] += 1
            end = time.perf_counter()
            mine["resolve"].append(t_resolve)
            mine["manifest"].append(t_manifest)
            mine["bundle"].append(t_bundle)
            mine["pull"].append(end - start)
            mine["bytes"] += len(body) + mbytes + bbytes
            mine["requests"] += 3
            mine["first"] = min(mine["first"], start)
            mine["last"] = max(mine["last"], end)
        except (OSError, http.client.HTTPException, Failure, ValueError, KeyError) as e:
            mine["errors"].append(f"client {index} pull {seq}: {e}")
            conn.close()
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    conn.close()


def run_http(args):
    results = [
        {"resolve": [], "manifest": [], "bundle": [], "pull": [], "bytes": 0, "requests": 0, "verified": 0,
         "errors": [], "first": float("inf"), "last": 0.0}
        for _ in range(args.clients)
    ]
    barrier = threading.Barrier(args.clients + 1)
    threads = [threading.Thread(target=http_client, args=(args, i, barrier, results)) for i in range(args.clients)]
    for t in threads:
        t.start()
    server = server_before(args.pid)
    cpu0 = os.times()
    barrier.wait()
    wall0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    cpu1 = os.times()
    out = {
        "kind": "http",
        "label": args.label,
        "clients": args.clients,
        "requests_per_client": args.requests,
        "wall_s": wall,
        "bytes": sum(r["bytes"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "pulls": sum(len(r["pull"]) for r in results),
        "verified": sum(r["verified"] for r in results),
        "errors": [e for r in results for e in r["errors"]],
        "client_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system),
        "server": server_after(args.pid, server),
    }
    for key in ("resolve", "manifest", "bundle", "pull"):
        out[key] = [x for r in results for x in r[key]]
    return out


def run_pulls(args):
    os.makedirs(args.dir, exist_ok=True)
    caches = [os.path.join(args.dir, f"cache-{i}") for i in range(args.clients)]
    server = server_before(args.pid)
    wall0 = time.perf_counter()
    procs = []
    for cache in caches:
        start = time.perf_counter()
        p = subprocess.Popen(
            [args.mcpj, "--registry", args.url, "--cache-dir", cache, "pull", args.ref],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        procs.append((p, start))
    times, errors = [], []
    # Reap in completion order so each process's end time is its own.
    pending = {p.pid: (p, start) for p, start in procs}
    while pending:
        pid, status = os.wait()
        end = time.perf_counter()
        if pid not in pending:
            continue
        p, start = pending.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        times.append(end - start)
        if p.returncode != 0:
            errors.append(f"mcp-j pull exited {p.returncode}: {p.stderr.read().decode(errors='replace')[:300]}")
        p.stderr.close()
    wall = time.perf_counter() - wall0
    out = {
        "kind": "pulls",
        "label": args.label,
        "clients": args.clients,
        "wall_s": wall,
        "pull": times,
        "errors": errors,
        "server": server_after(args.pid, server),
    }
    # The pulled bundle of the first cache, for the script to check; then drop the caches.
    out["cache_bytes"] = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(caches[0]) for f in fs
    ) if os.path.isdir(caches[0]) else 0
    if not errors and out["cache_bytes"] < args.bundle_size:
        errors.append(f"the first cache holds {out['cache_bytes']} bytes, less than the bundle's {args.bundle_size}")
    for cache in caches:
        subprocess.run(["rm", "-rf", "--", cache], check=True)
    return out


def serve(args):
    import http.server
    import shutil

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as the registry (else a small body waits for a delayed ACK)

        def __init__(self, *a, **kw):
            super().__init__(*a, directory=args.directory, **kw)

        def log_message(self, *a):
            pass

        def copyfile(self, source, outputfile):
            if args.sendfile:
                self.wfile.flush()
                self.connection.sendfile(source)
            else:
                shutil.copyfileobj(source, outputfile, 64 * 1024)

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 1024

    server = Server(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


def pct(values, q):
    """Nearest-rank percentile."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]


def ms3(values):
    return f"{pct(values, 50) * 1e3:7.1f} {pct(values, 99) * 1e3:7.1f} {max(values) * 1e3:7.1f}"


def mib(kib):
    return kib / 1024


def report(files):
    runs = [json.load(open(f)) for f in files]
    # A phase where nothing got through has no figures (its errors are listed at the end).
    http_runs = [r for r in runs if r["kind"] == "http" and r["pulls"] > 0]
    pull_runs = [r for r in runs if r["kind"] == "pulls" and r["pull"]]
    failed = [e for r in runs for e in r["errors"]]

    by_label = {}
    for r in http_runs:
        by_label.setdefault(r["label"], []).append(r)
    if http_runs:
        print("(a) raw HTTP pull sequences (resolve + manifest + bundle by digest), bench/registry_load.py")
        print(f"  {'server':<22}{'clients':>8}{'MB/s':>8}{'req/s':>8}{'pulls/s':>9}"
              f"   {'pull p50     p99     max':>24}   {'bundle p50  p99   max':>23}   {'resolve p50 p99  max':>23}"
              f"  {'srv CPU':>8}")
        print(f"  {'':<22}{'':>8}{'median':>8}{'':>8}{'':>9}   {'(ms, all rounds)':>24}")
        medians = {}
        for label, rs in by_label.items():
            mbs = [r["bytes"] / r["wall_s"] / 1e6 for r in rs]
            rps = [r["requests"] / r["wall_s"] for r in rs]
            pps = [r["pulls"] / r["wall_s"] for r in rs]
            medians[label] = statistics.median(mbs)
            pulls = [x for r in rs for x in r["pull"]]
            bundles = [x for r in rs for x in r["bundle"]]
            resolves = [x for r in rs for x in r["resolve"]]
            cpu = [r["server"].get("cpu_s", float("nan")) / (r["bytes"] / 1e9) for r in rs]
            print(f"  {label:<22}{rs[0]['clients']:>8}{statistics.median(mbs):>8.0f}{statistics.median(rps):>8.0f}"
                  f"{statistics.median(pps):>9.1f}   {ms3(pulls)}   {ms3(bundles)}   {ms3(resolves)}"
                  f"  {statistics.median(cpu) * 1e3:5.0f} ms/GB")
        for label, rs in by_label.items():
            each = ", ".join(f"{r['bytes'] / r['wall_s'] / 1e6:.0f}" for r in rs)
            verified = sum(r["verified"] for r in rs)
            pulls = sum(r["pulls"] for r in rs)
            client_cpu = statistics.median(r["client_cpu_s"] / r["wall_s"] for r in rs)
            srv_cpu = statistics.median(r["server"].get("cpu_s", float("nan")) / r["wall_s"] for r in rs)
            print(f"  {label:<22} rounds MB/s: {each}; {pulls} pulls, {verified} bundles sha256-checked;"
                  f" CPUs busy: server {srv_cpu:.2f}, driver {client_cpu:.2f}")
        labels = list(by_label)
        if len(labels) >= 2:
            # The concurrent mcp-j phase against each baseline.
            main = labels[1]
            for other in labels[:1] + labels[2:]:
                print(f"  {main} / {other} (MB/s, ratio of medians): {medians[main] / medians[other]:.2f}")
    by_clients = {}
    for r in pull_runs:
        by_clients.setdefault(r["clients"], []).append(r)
    agg = {}
    for n, rs in by_clients.items():
        if not agg:
            print("(b) `mcp-j pull` processes, each into a fresh cache (resolve, manifest, bundle: hash, write, fsync)")
        rates = [n * r["bundle_size"] / r["wall_s"] / 1e6 for r in rs]
        agg[n] = statistics.median(rates)
        times = [x for r in rs for x in r["pull"]]
        walls = statistics.median(r["wall_s"] for r in rs)
        print(f"  {n:>3} at once: wall median {walls * 1e3:6.0f} ms, aggregate median {agg[n]:6.0f} MB/s"
              f" (rounds: {', '.join(f'{x:.0f}' for x in rates)}); per process p50 {pct(times, 50) * 1e3:5.0f} ms,"
              f" p99 {pct(times, 99) * 1e3:5.0f}, max {max(times) * 1e3:5.0f}")
    if len(agg) >= 2:
        lo, hi = min(agg), max(agg)
        print(f"  {hi} at once / 1 alone (aggregate MB/s, ratio of medians): {agg[hi] / agg[lo]:.2f}")

    mem = [r for r in http_runs + pull_runs if r.get("server") and r["label"].startswith("mcp-j")]
    if mem:
        print("memory of `registry serve` (VmHWM reset before each phase with clear_refs; MiB)")
        print(f"  {'phase':<30}{'RSS before':>11}{'peak (HWM)':>11}{'growth':>8}{'per client':>12}{'RSS after':>10}{'threads':>12}")
        for r in mem:
            s = r["server"]
            growth = mib(s["hwm_kib"] - s["rss_before_kib"])
            print(f"  {r['label'] + ' x' + str(r['clients']):<30}{mib(s['rss_before_kib']):>11.1f}{mib(s['hwm_kib']):>11.1f}"
                  f"{growth:>+8.1f}{growth * 1024 / r['clients']:>9.0f} KiB{mib(s['rss_after_kib']):>10.1f}"
                  f"{s['threads_before']:>6} ->{s['threads_peak']:>3}")
    if failed:
        print(f"FAILURES: {len(failed)}")
        for e in failed[:20]:
            print("  " + e)
        return 1
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("http")
    h.add_argument("--url", required=True)
    h.add_argument("--package", required=True)
    h.add_argument("--ref", required=True)
    h.add_argument("--clients", type=int, required=True)
    h.add_argument("--requests", type=int, required=True)
    h.add_argument("--verify-every", type=int, default=10)
    h.add_argument("--pid", type=int, default=0)
    h.add_argument("--label", default="")
    h.add_argument("--out", required=True)
    p = sub.add_parser("pulls")
    p.add_argument("--mcpj", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--bundle-size", type=int, required=True)
    p.add_argument("--pid", type=int, default=0)
    p.add_argument("--label", default="")
    p.add_argument("--out", required=True)
    v = sub.add_parser("serve")
    v.add_argument("directory")
    v.add_argument("--sendfile", action="store_true")
    r = sub.add_parser("report")
    r.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.cmd == "report":
        return report(args.files)
    if args.cmd == "serve":
        return serve(args)
    out = run_http(args) if args.cmd == "http" else run_pulls(args)
    if args.cmd == "pulls":
        out["bundle_size"] = args.bundle_size
    with open(args.out, "w") as f:
        json.dump(out, f)
    for e in out["errors"][:5]:
        print(f"registry_load.py: {args.label}: {e}", file=sys.stderr)
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
