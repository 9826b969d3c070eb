#!/usr/bin/python3
"""Start-up of MCP servers started different ways, interleaved: for bench/run_ref.sh (`mcp-j
run REF` against `mcp-j run -- PROG`) and bench/installs.sh (`mcp-j run npm:…` against the
installed server run directly). Standard library only.

One sample: spawn mcp-j, send `initialize`, time until its answer arrives (start-up, the
resolve and the verification included), close stdin, wait for the exit (the total).

    run_ref.py ROUNDS NAME -- ARGV... [--- NAME -- ARGV...]...
"""

import os
import statistics
import subprocess
import sys
import time

INIT = (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n')


def sample(argv):
    start = time.perf_counter_ns()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdin.write(INIT)
    p.stdin.flush()
    # A server may send a notification first (server-everything does): the answer is the
    # first line with a result or an error.
    line = p.stdout.readline()
    while line and b'"result"' not in line and b'"error"' not in line:
        line = p.stdout.readline()
    answered = time.perf_counter_ns()
    p.stdin.close()
    p.stdout.read()
    code = p.wait(timeout=30)
    done = time.perf_counter_ns()
    if b'"result"' not in line or code != 0:
        sys.exit(f"run_ref.py: {' '.join(argv)}: answer {line[:200]!r}, exit {code}")
    return (answered - start) / 1e6, (done - start) / 1e6


def main():
    rounds = int(sys.argv[1])
    variants = []
    for chunk in " ".join(sys.argv[2:]).split(" --- "):
        name, _, argv = chunk.partition(" -- ")
        variants.append((name, argv.split()))
    times = {name: ([], []) for name, _ in variants}
    for name, argv in variants:  # warm-up
        sample(argv)
    for r in range(rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for name, argv in order:
            first, total = sample(argv)
            times[name][0].append(first)
            times[name][1].append(total)
    med = {name: (statistics.median(f), statistics.median(t)) for name, (f, t) in times.items()}
    for name, (f, t) in times.items():
        f, t = sorted(f), sorted(t)
        p90 = f[int(0.9 * (len(f) - 1))]
        print(f"  {name:<14} first answer median {statistics.median(f):7.2f} ms  p90 {p90:7.2f}"
              f"   whole run median {statistics.median(t):7.2f} ms")
    goal = os.environ.get("GOAL", "extra:5")
    base = variants[0][0]
    for other, _ in variants[1:]:
        extra = med[other][0] - med[base][0]
        ratio = med[other][0] / med[base][0]
        kind, _, limit = goal.partition(":")
        met = extra < float(limit) if kind == "extra" else ratio <= float(limit)
        what = f"< {limit} ms extra" if kind == "extra" else f"<= {limit}x"
        print(f"  {other} vs {base}: {extra:+.2f} ms to the first answer ({ratio:.2f}x)"
              f"   goal {what}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
