#!/usr/bin/env python3
"""
bench/acme.py — pkid against Pebble, full ACME flows, in one run.

    BENCH_SECONDS=20 bench/acme.py        (or: make bench BENCH_ONLY=acme)

Starts pebble-challtestsrv as the DNS server of both CAs (every A query
answers 127.0.0.1, no AAAA), then, one after the other on this machine:

1. Pebble (Debian `pebble`) with PEBBLE_VA_NOSLEEP=1,
   PEBBLE_WFE_NONCEREJECT=0, PEBBLE_AUTHZREUSE=0, its configuration
   written here (ports picked now, httpPort = acmeload's responder) and a
   CA + WFE certificate made here with openssl (the package ships none);
2. pkid: `pkid init` on a fresh data directory, then `pkid serve` with
   acme.http01_port = the responder, acme.dns_resolver = challtestsrv,
   log_level warn, access_log false, and the default (durable) storage;

and runs bench/acmeload against each: BENCH_CONCURRENCY (32) concurrent
full flows for BENCH_SECONDS (20) seconds, the same options for both.

Pebble 2.4 (Debian bookworm) deadlocks under concurrent newOrders: its
makeAuthorizations holds an authorization's lock while AddChallenge waits
for the store's write lock, and another newOrder's FindValidAuthorization
holds the store's read lock while it waits for that authorization (a lock
order inversion; at 32 flows it happens within seconds). acmeload notices
that nothing comes back (--stall-ms) and ends the run, counting the flows
left as errors of the kind "server stalled" and the rate over the time
until the last completed order. A stalled Pebble is started afresh and
measured again, up to PEBBLE_ATTEMPTS times, until its attempts add up to
BENCH_SECONDS of serving; its orders/s is the sum of its orders over the
sum of those times and its latency percentiles come from the merged
samples of every attempt.

Writes $BENCH_RESULTS/acme.json (default bench/results/acme.json):
{"name": "acme", "command", "machine", "rows": [orders/s, p99 full flow,
errors], "details": {per-step percentiles of each run, settings, notes}}.
Needs BIN (pkid) and BENCH (acmeload) in the environment or the default
build paths. Every process started here is stopped by pid. Exits 1 when
the benchmark could not run (a missed target is not a failure).
"""

import json
import os
import platform
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import pkidtest as pt			# noqa: E402

SECONDS_DEFAULT = 20		# flow phase per server
CONCURRENCY_DEFAULT = 32	# concurrent full flows
PEBBLE_ATTEMPTS = 5		# fresh Pebbles when one stalls
STALL_MS = 3000			# no answer this long: the server is stuck
READY_TIMEOUT = 30.0		# Pebble answering its directory
RUN_SLACK = 120			# seconds beyond the flow phase per acmeload run
TARGET_RATIO = 5.0		# pkid >= 5x Pebble's orders/s
TARGET_P99_MS = 100.0		# pkid p99 full flow
DOMAIN_SUFFIX = "acmeload.test"


class BenchError(Exception):
    pass


def log(msg):
    print("acme: %s" % msg, file=sys.stderr, flush=True)


def env_int(name, default, lo, hi):
    v = os.environ.get(name, "")
    if not v:
        return default
    try:
        n = int(v)
    except ValueError:
        raise BenchError("%s=%r is not a number" % (name, v))
    if not lo <= n <= hi:
        raise BenchError("%s=%d is outside %d..%d" % (name, n, lo, hi))
    return n


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model or
            platform.processor(), "kernel": platform.release()}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return ""


def package_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise BenchError("openssl %s: %s" % (args[0], r.stderr.strip()))


def pebble_certs(d):
    """A CA and a WFE certificate for localhost/127.0.0.1 signed by it
    (P-256, two days): (ca.pem, wfe.pem, wfe.key)."""
    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    key, csr = os.path.join(d, "wfe.key"), os.path.join(d, "wfe.csr")
    cert, ext = os.path.join(d, "wfe.pem"), os.path.join(d, "wfe.ext")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
            "-out", ca, "-days", "2", "-subj", "/CN=acme bench Pebble CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    pt.write(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
             "basicConstraints=critical,CA:FALSE\n"
             "keyUsage=critical,digitalSignature\n"
             "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


class Pebble(pt.Process):
    """One Pebble process with its own config file and ports."""

    def __init__(self, d, ca, cert, key, http01, dns):
        self.dir = d
        self.ca = ca
        self.cert = cert
        self.key = key
        self.http01 = http01
        self.dns = dns
        self.port = None
        super().__init__("pebble", [], os.path.join(d, "pebble.log"),
                         env={"PEBBLE_VA_NOSLEEP": "1",
                              "PEBBLE_WFE_NONCEREJECT": "0",
                              "PEBBLE_AUTHZREUSE": "0"})

    @property
    def directory(self):
        return "https://127.0.0.1:%d/dir" % self.port

    def start(self, attempts=3):
        """Writes the config (fresh ports), starts Pebble and waits for
        its directory; retries with new ports when they were taken."""
        for _ in range(attempts):
            self.port, mgmt, tls = pt.free_ports(3)
            cfg = {"pebble": {
                "listenAddress": "127.0.0.1:%d" % self.port,
                "managementListenAddress": "127.0.0.1:%d" % mgmt,
                "certificate": self.cert, "privateKey": self.key,
                "httpPort": self.http01, "tlsPort": tls,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False}}
            conf = os.path.join(self.dir, "pebble.json")
            pt.write(conf, json.dumps(cfg, indent=2) + "\n")
            self.args = ["pebble", "-config", conf, "-dnsserver", self.dns]
            super().start()
            # No proxy from the environment: everything is on loopback.
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}),
                urllib.request.HTTPSHandler(
                    context=ssl.create_default_context(cafile=self.ca)))
            deadline = time.monotonic() + READY_TIMEOUT
            while time.monotonic() < deadline and self.running():
                try:
                    with opener.open(self.directory, timeout=2) as r:
                        if r.status == 200:
                            return
                except OSError:
                    pass
                time.sleep(0.1)
            self.stop()
        raise BenchError("pebble did not start; log:\n%s" % self.log_tail())


def acmeload_path():
    d = os.environ.get("BENCH") or os.path.join(REPO, "build", "bench",
                                                "bin")
    p = os.path.join(d, "acmeload")
    if not os.access(p, os.X_OK):
        raise BenchError("%s is not built (make %s)" % (
            p, "build/bench/bin/acmeload"))
    return p


def cpu_seconds(pid):
    """User + system CPU seconds a process used so far (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / float(
        os.sysconf("SC_CLK_TCK"))


def run_acmeload(binary, label, directory, cafile, http01, seconds,
                 concurrency, workdir, server_pid):
    """One acmeload run; returns (its JSON report with the server's CPU
    seconds added, its full-flow samples in microseconds, the argument
    list)."""
    out = os.path.join(workdir, label + ".json")
    samples = os.path.join(workdir, label + ".samples")
    args = [binary, "--directory", directory, "--cafile", cafile,
            "--http01-port", str(http01), "--concurrency", str(concurrency),
            "--duration", str(seconds), "--domain-suffix", DOMAIN_SUFFIX,
            "--stall-ms", str(STALL_MS), "--json", out, "--samples",
            samples]
    logp = os.path.join(workdir, label + ".log")
    log("%s: $ %s" % (label, " ".join(args)))
    cpu0 = cpu_seconds(server_pid)
    with open(logp, "ab") as logf:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf,
                                env=pt.child_env())
        try:
            rc = proc.wait(timeout=seconds + RUN_SLACK)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BenchError("acmeload (%s) overran %d s" % (
                label, seconds + RUN_SLACK))
    cpu1 = cpu_seconds(server_pid)
    text = pt.read(logp)
    sys.stderr.write(text)
    if rc != 0 or not os.path.exists(out):
        raise BenchError("acmeload (%s) failed with status %d:\n%s" % (
            label, rc, text[-3000:]))
    with open(out) as f:
        rep = json.load(f)
    with open(samples) as f:
        flow = [int(x) for x in f.read().split()]
    rep["server_cpu_s"] = round(cpu1 - cpu0, 3) if None not in (
        cpu0, cpu1) else None
    return rep, flow, args


def pct(sorted_us, p):
    """Nearest-rank percentile of sorted microsecond samples, in ms."""
    if not sorted_us:
        return None
    rank = max(1, -(-len(sorted_us) * p // 100))
    return round(sorted_us[int(rank) - 1] / 1000.0, 3)


def summary(reports, samples):
    """Merges one or more acmeload runs of the same server."""
    orders = sum(r["orders"] for r in reports)
    secs = sum(r["elapsed_s"] for r in reports)
    errors = sum(r["errors"]["total"] for r in reports)
    kinds = {}
    for r in reports:
        for k, v in r["errors"]["by_type"].items():
            kinds[k] = kinds.get(k, 0) + v
    s = sorted(samples)
    cpu = [r.get("server_cpu_s") for r in reports]
    cpu = None if None in cpu else sum(cpu)
    return {"orders": orders, "seconds": round(secs, 3),
            "server_cpu_s": cpu,
            "server_cpu_ms_per_order": round(cpu * 1000.0 / orders, 3)
            if cpu is not None and orders else None,
            "orders_per_s": round(orders / secs, 3) if secs > 0 else 0.0,
            "errors": errors, "errors_by_type": kinds,
            "stalled_runs": sum(1 for r in reports if r.get("stalled")),
            "flow_ms": {"n": len(s), "p50": pct(s, 50), "p90": pct(s, 90),
                        "p99": pct(s, 99), "max": pct(s, 100)},
            "client_cpu_cores": [r["client_cpu"]["cores"] for r in reports]}


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return round(float(a) / float(b), 3)


def bench_pebble(tmp, binary, cts, http01, seconds, concurrency):
    d = os.path.join(tmp, "pebble")
    os.makedirs(d)
    ca, cert, key = pebble_certs(d)
    reports, samples, args, served = [], [], None, 0.0
    for attempt in range(1, PEBBLE_ATTEMPTS + 1):
        peb = Pebble(d, ca, cert, key, http01, cts.resolver)
        try:
            peb.start()
            rep, flow, args = run_acmeload(
                binary, "pebble-%d" % attempt, peb.directory, ca, http01,
                seconds, concurrency, tmp, peb.proc.pid)
        finally:
            peb.stop()
        reports.append(rep)
        samples.extend(flow)
        served += rep["elapsed_s"]
        if not rep.get("stalled"):
            break
        log("pebble attempt %d stalled after %d orders (%.1f s of serving;"
            " %.1f s so far)" % (attempt, rep["orders"], rep["elapsed_s"],
                                 served))
        if served >= seconds:
            break
    return reports, samples, args


def bench_pkid(tmp, binary, cts, http01, seconds, concurrency):
    srv = pt.Pkid(pt.bin_dir(), os.path.join(tmp, "pkid"))
    os.makedirs(srv.dir)
    r = srv.init()
    if not r.ok:
        raise BenchError("pkid init failed:\n%s" % r.describe())
    try:
        srv.start({"log_level": "warn", "access_log": False,
                   "acme": {"http01_port": http01,
                            "dns_resolver": cts.resolver}})
        rep, flow, args = run_acmeload(
            binary, "pkid", srv.https_url + "/acme/directory", srv.ca_bundle,
            http01, seconds, concurrency, tmp, srv.proc.pid)
    finally:
        rc, graceful = srv.stop()
        if not graceful:
            log("pkid did not stop on SIGTERM (killed); log tail:\n%s" %
                srv.log_tail(20))
    return rep, flow, args


def main():
    seconds = env_int("BENCH_SECONDS", SECONDS_DEFAULT, 1, 3600)
    concurrency = env_int("BENCH_CONCURRENCY", CONCURRENCY_DEFAULT, 1, 4096)
    results = os.environ.get("BENCH_RESULTS") or os.path.join(HERE,
                                                              "results")
    for tool in ("pebble", "pebble-challtestsrv", "openssl"):
        if shutil.which(tool) is None:
            raise BenchError("%s is not installed (make deps)" % tool)
    binary = acmeload_path()
    pkid_bin = os.path.join(pt.bin_dir(), "pkid")
    if not os.access(pkid_bin, os.X_OK):
        raise BenchError("%s is not built (set BIN)" % pkid_bin)
    tmp = tempfile.mkdtemp(prefix="pkid-bench-acme-")
    keep = os.environ.get("PKID_TEST_KEEP")
    cts = pt.ChallTestSrv(tmp)
    load_before = loadavg()
    try:
        cts.start()
        http01 = pt.free_ports(1)[0]
        peb_reps, peb_samples, peb_args = bench_pebble(
            tmp, binary, cts, http01, seconds, concurrency)
        pkid_rep, pkid_samples, pkid_args = bench_pkid(
            tmp, binary, cts, http01, seconds, concurrency)
    finally:
        cts.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log("kept %s" % tmp)
    load_after = loadavg()

    peb = summary(peb_reps, peb_samples)
    pk = summary([pkid_rep], pkid_samples)
    rows = [
        {"metric": "orders/s at %d flows" % concurrency,
         "pkid": pk["orders_per_s"], "peer_name": "pebble",
         "peer": peb["orders_per_s"],
         "ratio": ratio(pk["orders_per_s"], peb["orders_per_s"]),
         "target": ">= %gx pebble" % TARGET_RATIO,
         "ok": (ratio(pk["orders_per_s"], peb["orders_per_s"]) or 0) >=
         TARGET_RATIO},
        {"metric": "p99 full flow ms at %d flows" % concurrency,
         "pkid": pk["flow_ms"]["p99"], "peer_name": "pebble",
         "peer": peb["flow_ms"]["p99"],
         "ratio": ratio(pk["flow_ms"]["p99"], peb["flow_ms"]["p99"]),
         "target": "< %g ms" % TARGET_P99_MS,
         "ok": pk["flow_ms"]["p99"] is not None and
         pk["flow_ms"]["p99"] < TARGET_P99_MS},
        {"metric": "errors", "pkid": pk["errors"], "peer_name": "pebble",
         "peer": peb["errors"], "ratio": ratio(pk["errors"], peb["errors"]),
         "target": "0", "ok": pk["errors"] == 0 and pk["orders"] > 0},
    ]
    command = "make bench BENCH_ONLY=acme"
    extra = ["%s=%s" % (k, os.environ[k]) for k in
             ("BENCH_SECONDS", "BENCH_CONCURRENCY") if os.environ.get(k)]
    if extra:
        command = " ".join(extra) + " " + command
    notes = [
        "Same machine, one after the other, same acmeload options; "
        "client CPU is shared with the server under test.",
        "pkid runs with its default durable storage (every acknowledged "
        "state change committed to disk); Pebble keeps everything in "
        "memory.",
        "Polls honour Retry-After up to %d ms and wait %d ms when there "
        "is none (acmeload settings below); pkid answers Retry-After: %s "
        "on pending/processing objects, Pebble sends none." % (
            pkid_rep["settings"]["retry_after_cap_ms"],
            pkid_rep["settings"]["poll_ms"],
            max(s["retry_after_max_s"] for s in
                pkid_rep["steps"].values()) or "none"),
    ]
    waited = sum(pkid_rep["steps"][k]["waited_ms"] for k in
                 ("validation", "issuance"))
    if pkid_rep["orders"] and waited:
        w = waited / pkid_rep["orders"]
        notes.append(
            "pkid's flows waited %.0f ms each on average as its Retry-After "
            "asked (capped); at %d flows that alone bounds the rate at %.0f "
            "orders/s." % (w, concurrency, concurrency * 1000.0 / w))
    if peb["stalled_runs"]:
        notes.append(
            "Pebble %s deadlocked in %d of %d runs (lock-order bug of its "
            "in-memory store under concurrent newOrders); its figures "
            "cover the %.1f s it served before stalling, summed over the "
            "runs, and 'server stalled' errors count the flows it left "
            "hanging." % (package_version("pebble"), peb["stalled_runs"],
                          len(peb_reps), peb["seconds"]))
    res = {
        "name": "acme",
        "command": command,
        "machine": machine(),
        "rows": rows,
        "details": {
            "concurrency": concurrency,
            "seconds": seconds,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "pebble_version": package_version("pebble"),
            "notes": notes,
            "acmeload": {"pkid": " ".join(pkid_args[1:]),
                         "pebble": " ".join(peb_args[1:])},
            "pkid": {"summary": pk, "run": pkid_rep},
            "pebble": {"summary": peb, "runs": peb_reps},
        },
    }
    os.makedirs(results, exist_ok=True)
    out = os.path.join(results, "acme.json")
    pt.write(out, json.dumps(res, indent=2, sort_keys=False) + "\n")
    log("pkid %.1f orders/s (p99 %s ms, %d errors, %s ms CPU/order); "
        "pebble %.1f orders/s (p99 %s ms, %d errors, %s ms CPU/order); "
        "ratio %s; wrote %s" % (
            pk["orders_per_s"], pk["flow_ms"]["p99"], pk["errors"],
            pk["server_cpu_ms_per_order"], peb["orders_per_s"],
            peb["flow_ms"]["p99"], peb["errors"],
            peb["server_cpu_ms_per_order"], rows[0]["ratio"], out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, pt.Abort) as e:
        msg = str(e)
        if isinstance(e, pt.Abort) and e.detail:
            msg += "\n" + e.detail
        log("FAILED: %s" % msg)
        sys.exit(1)
