#!/usr/bin/python3
"""Interleaved timing runner for bench/exec.sh: runs every (wrapper, case) pair round-robin,
checks each exit status, and prints the tables. Standard library only, so the system
/usr/bin/python3 runs it without anything installed.

Timing: os.posix_spawn (vfork-style clone in glibc) + os.waitpid, timed with
time.perf_counter_ns() (CLOCK_MONOTONIC). Anything prepared per run (bwrap's --file pipes)
is made before the clock starts. The same harness cost is in every variant, so it cancels
in differences; in ratios it is a small constant on both sides (see bare /bin/true).
"""

import argparse
import os
import struct
import random
import statistics
import sys
import time

CLEAN_ENV = {  # what `mcp-j exec` gives its program; bwrap and bare get the same
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "TERM": "xterm",
}

# Mirrors crates/mcp-j-engine/src/plan.rs (SYSTEM_PATHS, ETC_PATHS, synthetic /etc files).
SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
ETC_PATHS = [
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl",
    "/etc/ca-certificates", "/etc/ca-certificates.conf", "/etc/pki", "/etc/crypto-policies",
    "/etc/localtime", "/etc/timezone", "/etc/alternatives", "/etc/protocols",
    "/etc/services", "/etc/mime.types",
]
SYNTH_ETC = {
    "/etc/passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                   "sandbox:x:1000:1000:mcp-j sandbox:/tmp:/usr/sbin/nologin\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "/etc/group": "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n",
    "/etc/hosts": "127.0.0.1\tlocalhost mcp-j\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "/etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n"
                          "networks: files\nprotocols: files\nservices: files\n",
    "/etc/hostname": "mcp-j\n",
}
MEMORY_BYTES = 512 * 1024 * 1024  # mcp-j's default --memory, used as its /tmp and /dev/shm size
FIRST_DATA_FD = 10

PY = "/usr/bin/python3"
IMPORTS = ("import json, asyncio, ssl, email, http.client, decimal, "
           "xml.etree.ElementTree, sqlite3, argparse")


# Classic BPF, as in <linux/filter.h> and <linux/seccomp.h>.
BPF_LD_W_ABS, BPF_JMP_JA, BPF_JMP_JEQ_K, BPF_RET_K = 0x20, 0x05, 0x15, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS = 0x7FFF0000, 0x80000000
AUDIT_ARCH_X86_64 = 0xC000003E
WALKED = 40  # compares every syscall walks: mcp-j's binary searches walk "a few dozen"


def sized_filter(n):
    """A seccomp program of exactly n instructions that allows every x86_64 syscall.

    Stands in for one of mcp-j's filters in `bwrap --add-seccomp-fd`, so bwrap copies,
    checks and installs a program of the same size. Layout: check the architecture, load
    the syscall number, walk WALKED compares that never match (both branches fall
    through), jump over the rest (more never-matching compares: present, checked, not
    walked, like the untaken halves of mcp-j's binary searches), return ALLOW."""
    def ins(code, k, jt=0, jf=0):
        return struct.pack("=HBBI", code, jt, jf, k)
    head = [ins(BPF_LD_W_ABS, 4), ins(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
            ins(BPF_RET_K, SECCOMP_RET_KILL_PROCESS), ins(BPF_LD_W_ABS, 0)]
    never = ins(BPF_JMP_JEQ_K, 0xFFFFFFFF)
    body = n - len(head) - 1  # the last instruction is RET ALLOW
    if body < 0:
        raise SystemExit(f"stats.py: a filter needs at least {len(head) + 1} instructions")
    walked = min(WALKED, body)
    skipped = body - walked - 1 if body > walked else 0
    prog = head + [never] * walked
    if body > walked:
        prog += [ins(BPF_JMP_JA, skipped)] + [never] * skipped
    prog.append(ins(BPF_RET_K, SECCOMP_RET_ALLOW))
    assert len(prog) == n
    return b"".join(prog)


def typical_bwrap_args(workdir):
    """The "typical hardened bwrap" of issue 8: every namespace, /usr read-only with the
    merged-/usr links, fresh /proc /dev /tmp, no environment, no capabilities, no nested
    user namespaces, the workdir bound."""
    a = ["--unshare-all", "--unshare-user", "--die-with-parent", "--new-session",
         "--ro-bind", "/usr", "/usr"]
    for p in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(p):
            a += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            a += ["--ro-bind", p, p]
    a += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--clearenv",
          "--cap-drop", "ALL", "--disable-userns",
          "--bind", workdir, workdir, "--chdir", workdir]
    return a


def bwrap_args(workdir):
    """bwrap flags for the closest equivalent of mcp-j's default jail, from the host layout.

    Returns (argv prefix, list of (dest, contents) for --file data fds)."""
    a = ["--unshare-all", "--die-with-parent", "--new-session", "--hostname", "mcp-j",
         "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL", "--clearenv"]
    for k, v in CLEAN_ENV.items():
        a += ["--setenv", k, v]
    for p in SYSTEM_PATHS:  # merged /usr: replicate the symlinks; else bind the directory
        if os.path.islink(p):
            a += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            a += ["--ro-bind", p, p]
    a += ["--dir", "/etc"]
    files = []
    for i, (dest, contents) in enumerate(SYNTH_ETC.items()):
        a += ["--file", str(FIRST_DATA_FD + i), dest]
        files.append(contents)
    for p in ETC_PATHS:
        if os.path.islink(p):
            a += ["--symlink", os.readlink(p), p]
        elif os.path.exists(p):
            a += ["--ro-bind", p, p]
    a += ["--proc", "/proc", "--dev", "/dev",
          "--size", str(MEMORY_BYTES), "--tmpfs", "/dev/shm",
          "--size", str(MEMORY_BYTES), "--tmpfs", "/tmp",
          "--bind", workdir, workdir, "--chdir", workdir,
          "--remount-ro", "/"]
    return a, files


class Variant:
    def __init__(self, name, argv, env, data_files=()):
        self.name, self.argv, self.env, self.data_files = name, argv, env, list(data_files)

    def spawn_setup(self, quiet):
        """File actions for one run: stdio, plus fresh pipes holding bwrap's --file data."""
        acts, to_close = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)], []
        if quiet:
            acts += [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                     (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]
        for i, contents in enumerate(self.data_files):
            r, w = os.pipe()  # every program here fits the pipe buffer (64 KiB)
            os.write(w, contents if isinstance(contents, bytes) else contents.encode())
            os.close(w)
            acts.append((os.POSIX_SPAWN_DUP2, r, FIRST_DATA_FD + i))
            to_close.append(r)
        return acts, to_close

    def run(self, quiet=True):
        """Run once; return (wall ns, wait status)."""
        wall, _, status = self.run_cpu(quiet)
        return wall, status

    def run_cpu(self, quiet=True):
        """Run once; return (wall ns, CPU ns, wait status). CPU is user + system time from
        wait4's rusage: the child and every descendant it (or they) waited for, i.e. the
        whole tree of a wrapper that reaps its children (an unreaped descendant's time would
        be missing, so the figure can only flatter a wrapper)."""
        acts, to_close = self.spawn_setup(quiet)
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(self.argv[0], self.argv, self.env, file_actions=acts)
        _, status, ru = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
        for fd in to_close:
            os.close(fd)
        return t1 - t0, int((ru.ru_utime + ru.ru_stime) * 1e9), status


def check(variant, status):
    if os.waitstatus_to_exitcode(status) == 0:
        return
    code = os.waitstatus_to_exitcode(status)
    print(f"\nFAILED: {variant.name} exited {code}: {' '.join(variant.argv)}", file=sys.stderr)
    print("re-running it with output shown:", file=sys.stderr)
    sys.stderr.flush()
    _, st = variant.run(quiet=False)
    print(f"(exit {os.waitstatus_to_exitcode(st)})", file=sys.stderr)
    sys.exit(1)


def boot(rng, xs, ys, fn, n=2000):
    """95% percentile-bootstrap interval of fn(xs_resampled, ys_resampled)."""
    vals = sorted(fn(rng.choices(xs, k=len(xs)), rng.choices(ys, k=len(ys))) for _ in range(n))
    return vals[int(0.025 * n)], vals[int(0.975 * n) - 1]


def verdict_of(point, lo, hi, goal):
    if hi <= goal:
        return "met"
    if lo > goal:
        return "NOT met"
    return "met (CI spans the goal)" if point <= goal else "NOT met (CI spans the goal)"


def ms(ns):
    return ns / 1e6


def pct(xs, q):
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcpj", required=True)
    ap.add_argument("--bwrap", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--py-rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--getppid-n", type=int, default=500_000)
    ap.add_argument("--open-n", type=int, default=50_000)
    ap.add_argument("--lone-rounds", type=int, default=20)
    ap.add_argument("--show-bwrap", action="store_true")
    ap.add_argument("--filter-lens", default="",
                    help="instruction counts of mcp-j's seccomp filters, comma-separated, "
                         "in install order: the 'bwrap+seccomp' variant installs programs "
                         "of these sizes with --add-seccomp-fd")
    o = ap.parse_args()
    os.chdir(o.workdir)

    host_env = dict(os.environ)
    bw_prefix, bw_files = bwrap_args(o.workdir)
    typ_prefix = typical_bwrap_args(o.workdir)
    filter_lens = [int(x) for x in o.filter_lens.split(",") if x]
    sc_prefix, sc_files = list(bw_prefix), list(bw_files)
    sc_flags = []  # installed in mcp-j's order
    for n in filter_lens:
        sc_flags += ["--add-seccomp-fd", str(FIRST_DATA_FD + len(sc_files))]
        sc_files.append(sized_filter(n))
    sc_prefix = sc_flags + sc_prefix
    if o.show_bwrap:
        print("bwrap command (fds 10-14 carry the synthetic /etc files):")
        print("  bwrap " + " ".join(bw_prefix) + " -- PROG ARGS")
        print("bwrap+seccomp: the same plus " + " ".join(sc_prefix[:2 * len(filter_lens)])
              + f" (programs of {filter_lens} instructions)")
        print("bwrap-typical: bwrap " + " ".join(typ_prefix) + " -- PROG ARGS\n")

    cases = {
        "true": ["/bin/true"],
        "py-import": [PY, "-c", IMPORTS],
        "py-getppid": [PY, "-c", f"import os\nfor _ in range({o.getppid_n}): os.getppid()"],
        "py-open": [PY, "-c",
                    "import os\no, c = os.open, os.close\n"
                    f"for _ in range({o.open_n}): c(o('/usr/bin/true', os.O_RDONLY))"],
    }
    wrappers = {
        "mcp-j": lambda cmd: Variant("mcp-j", [o.mcpj, "exec", "--", *cmd], host_env),
        "bwrap": lambda cmd: Variant("bwrap", [o.bwrap, *bw_prefix, "--", *cmd], host_env,
                                     bw_files),
        "bare": lambda cmd: Variant("bare", cmd, CLEAN_ENV),
    }
    # Startup only: (a) the typical hardened bwrap, (b) bwrap doing mcp-j's work.
    extra = {
        "bwrap-typical": Variant("bwrap-typical", [o.bwrap, *typ_prefix, "--", "/bin/true"],
                                 host_env),
    }
    if filter_lens:
        extra["bwrap+seccomp"] = Variant("bwrap+seccomp",
                                         [o.bwrap, *sc_prefix, "--", "/bin/true"],
                                         host_env, sc_files)
    W = list(wrappers)
    V = {(w, c): wrappers[w](cmd) for c, cmd in cases.items() for w in W}
    for w, v in extra.items():
        V[(w, "true")] = v
    WT = W + list(extra)  # the startup loop's variants
    samples = {k: [] for k in V}
    cpu = {w: [] for w in WT}

    for k, v in V.items():  # warm caches, and refuse to time anything that fails
        for _ in range(o.warmup if k[1] == "true" else 1):
            check(v, v.run()[1])

    py_every = max(1, o.rounds // max(1, o.py_rounds)) if o.py_rounds else 0
    py_done = 0
    t_start = time.monotonic()
    for r in range(o.rounds):
        order = WT[r % len(WT):] + WT[:r % len(WT)]  # rotate: no variant always goes first
        for w in order:
            ns, cpu_ns, st = V[(w, "true")].run_cpu()
            check(V[(w, "true")], st)
            samples[(w, "true")].append(ns)
            cpu[w].append(cpu_ns)
        order = W[r % len(W):] + W[:r % len(W)]
        if py_every and r % py_every == 0 and py_done < o.py_rounds:
            for c in ("py-import", "py-getppid", "py-open"):
                for w in order:
                    ns, st = V[(w, c)].run()
                    check(V[(w, c)], st)
                    samples[(w, c)].append(ns)
            py_done += 1
    elapsed = time.monotonic() - t_start

    rng = random.Random(1)
    med = statistics.median
    mean = statistics.fmean
    T = {w: samples[(w, "true")] for w in WT}

    print(f"startup: /bin/true, {o.rounds} interleaved rounds "
          f"(timed loop {elapsed:.0f} s)")
    print(f"  {'variant':<15}{'mean':>9}{'median':>9}{'p10':>9}{'p90':>9}"
          f"{'CPU med':>10}{'CPU p10':>9}   (ms; CPU = user+sys of the process tree)")
    for w in WT:
        xs = T[w]
        print(f"  {w:<15}{ms(mean(xs)):9.2f}{ms(med(xs)):9.2f}"
              f"{ms(pct(xs, .1)):9.2f}{ms(pct(xs, .9)):9.2f}"
              f"{ms(med(cpu[w])):10.2f}{ms(pct(cpu[w], .1)):9.2f}")
    rmed = med(T["mcp-j"]) / med(T["bwrap"])
    lo, hi = boot(rng, T["mcp-j"], T["bwrap"], lambda a, b: med(a) / med(b))
    rmean = mean(T["mcp-j"]) / mean(T["bwrap"])
    verdict = verdict_of(rmed, lo, hi, 1.0)
    print(f"  mcp-j / bwrap   median {rmed:.3f} [95% CI {lo:.3f}-{hi:.3f}], mean {rmean:.3f}"
          f"   goal <= 1.00 (no slower than bwrap): {verdict}")
    for w in ("mcp-j", "bwrap"):
        d_med = med(T[w]) - med(T["bare"])
        d_mean = mean(T[w]) - mean(T["bare"])
        print(f"  {w} - bare   median +{ms(d_med):.2f} ms, mean +{ms(d_mean):.2f} ms")
    # Issue 8's goals: <= 1.0x bwrap doing the same work, <= 1.25x the typical hardened bwrap.
    goals = [("bwrap+seccomp", 1.0, "bwrap doing the same work")] if filter_lens else []
    goals.append(("bwrap-typical", 1.25, "typical hardened bwrap"))
    for base, goal, what in goals:
        for kind, xs, ys in (("wall", T["mcp-j"], T[base]), ("CPU ", cpu["mcp-j"], cpu[base])):
            r_ = med(xs) / med(ys)
            lo, hi = boot(rng, xs, ys, lambda a, b: med(a) / med(b))
            print(f"  mcp-j / {base:<14}{kind} median {r_:.3f} [95% CI {lo:.3f}-{hi:.3f}]"
                  f"   goal <= {goal:.2f} ({what}): {verdict_of(r_, lo, hi, goal)}")

    if o.lone_rounds:
        lone_start(o, V, WT, rng)
    if not o.py_rounds:
        return
    print(f"\nper-syscall overhead: {py_done} interleaved rounds; each case minus its own "
          f"wrapper's /bin/true median")
    print(f"  {'case':<24}{'mcp-j net':>11}{'bwrap net':>11}{'bare net':>10}"
          f"{'mcp-j/bare':>12}  {'95% CI':<11}{'bwrap/bare':>11}")
    labels = {
        "py-import": "py-import (imports)",
        "py-getppid": f"py-getppid ({o.getppid_n // 1000}k)",
        "py-open": f"py-open+close ({o.open_n // 1000}k)",
    }
    worst, worst_ci = 0.0, (0.0, 0.0)
    net = {}
    for c in ("py-import", "py-getppid", "py-open"):
        for w in W:
            net[(w, c)] = med(samples[(w, c)]) - med(T[w])

        def ratio(a, at, b, bt):
            return (med(a) - med(at)) / (med(b) - med(bt))

        r_m = net[("mcp-j", c)] / net[("bare", c)]
        r_b = net[("bwrap", c)] / net[("bare", c)]
        # Bootstrap the whole ratio: resample the case and the baselines of both sides.
        vals = sorted(
            ratio(rng.choices(samples[("mcp-j", c)], k=py_done),
                  rng.choices(T["mcp-j"], k=len(T["mcp-j"])),
                  rng.choices(samples[("bare", c)], k=py_done),
                  rng.choices(T["bare"], k=len(T["bare"])))
            for _ in range(2000))
        lo, hi = vals[50], vals[1949]
        if r_m > worst:
            worst, worst_ci = r_m, (lo, hi)
        print(f"  {labels[c]:<24}{ms(net[('mcp-j', c)]):9.1f}ms{ms(net[('bwrap', c)]):9.1f}ms"
              f"{ms(net[('bare', c)]):8.1f}ms{r_m:12.3f}  {lo:.3f}-{hi:.3f}{r_b:11.3f}")
    for c, n, what in (("py-getppid", o.getppid_n, "getppid"),
                       ("py-open", o.open_n, "open+close pair")):
        per = {w: (net[(w, c)] - net[("bare", c)]) / n for w in ("mcp-j", "bwrap")}
        print(f"  extra per {what}: mcp-j {per['mcp-j']:+.0f} ns, bwrap {per['bwrap']:+.0f} ns")
    verdict = verdict_of(worst, *worst_ci, 1.05)
    print(f"  goal: sandboxed (minus startup) / bare (minus startup) <= 1.05 "
          f"in every case: {verdict} (worst {worst:.3f})")


def lone_start(o, V, WT, rng):
    """Starts with a pause before each, as a client starting one server sees them: kernel
    state a run leaves warm for the next one (an RCU grace period just passed, say) has
    gone cold again, which back-to-back rounds hide."""
    pause = 0.15
    lone = {w: [] for w in WT}
    for r in range(o.lone_rounds):
        order = WT[r % len(WT):] + WT[:r % len(WT)]
        for w in order:
            time.sleep(pause)
            ns, st = V[(w, "true")].run()
            check(V[(w, "true")], st)
            lone[w].append(ns)
    med = statistics.median
    print(f"\nlone start: /bin/true, {o.lone_rounds} rounds, each run after a {pause * 1000:.0f} ms pause")
    print(f"  {'variant':<15}{'median':>9}{'p10':>9}{'p90':>9}   (ms, wall)")
    for w in WT:
        xs = lone[w]
        print(f"  {w:<15}{ms(med(xs)):9.2f}{ms(pct(xs, .1)):9.2f}{ms(pct(xs, .9)):9.2f}")
    for base in [b for b in ("bwrap+seccomp", "bwrap-typical") if b in lone]:
        r_ = med(lone["mcp-j"]) / med(lone[base])
        lo, hi = boot(rng, lone["mcp-j"], lone[base], lambda a, b: med(a) / med(b))
        print(f"  mcp-j / {base:<14}wall median {r_:.3f} [95% CI {lo:.3f}-{hi:.3f}]")


if __name__ == "__main__":
    main()
