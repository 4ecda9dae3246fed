"""
pkidtest — shared plumbing for the pkid integration suites (mgmt, ACME, EST).

Python 3 standard library only. A suite does roughly:

    sys.dont_write_bytecode = True	# keep __pycache__ out of the tree
    import pkidtest as pt
    t = pt.Checker("mgmt_test")
    srv = pt.Pkid(pt.bin_dir(), tmpdir)
    srv.init()
    try:
        srv.start()
        t.guard("step", some_function, srv)
    finally:
        t.record_stop(srv.stop())
    sys.exit(t.finish())

Every child process runs with child_env(): the CA-bundle overrides that
Python, curl and OpenSSL honour (REQUESTS_CA_BUNDLE, SSL_CERT_FILE,
CURL_CA_BUNDLE, SSL_CERT_DIR) and the pkictl PKID_* defaults are removed,
so what a test passes on the command line is what the child uses.
"""

import base64
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback

SCRUBBED_ENV = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                "SSL_CERT_DIR", "PKID_URL", "PKID_TOKEN_FILE", "PKID_CACERT")
START_TIMEOUT = 30.0		# seconds until /healthz must answer
STOP_TIMEOUT = 15.0		# seconds SIGTERM may take before SIGKILL
HTTP_TIMEOUT = 30.0		# seconds per HTTP request
OUTPUT_SHOWN = 3000		# characters of stdout/stderr shown per failure
PEM_CERT_RE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.S)


class Abort(Exception):
    """Raised inside a step when continuing makes no sense; the message
    (with details) is recorded as one failure by Checker.guard()."""

    def __init__(self, what, detail=""):
        super().__init__(what)
        self.what = what
        self.detail = detail


# ---- environment and processes -------------------------------------------

def bin_dir():
    """The directory holding pkid and pkictl: $BIN, else ./bin of the
    repository this file lives in."""
    d = os.environ.get("BIN")
    if not d:
        d = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "..", "..", "bin")
    return os.path.abspath(d)


def repo_dir():
    return os.path.abspath(os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", ".."))


def child_env(extra=None):
    """os.environ without the CA overrides and PKID_* defaults, plus
    extra."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    if extra:
        env.update(extra)
    return env


class Result:
    """Outcome of run(): args, returncode, stdout/stderr (text) and
    stdout_bytes."""

    def __init__(self, args, returncode, out, err):
        self.args = [str(a) for a in args]
        self.returncode = returncode
        self.stdout_bytes = out
        self.stdout = out.decode("utf-8", "replace")
        self.stderr = err.decode("utf-8", "replace")

    @property
    def ok(self):
        return self.returncode == 0

    def describe(self):
        """Command, exit status and (truncated) output, for failure
        messages."""
        return "command: %s\nexit status: %s\nstdout: %s\nstderr: %s" % (
            " ".join(_shell_quote(a) for a in self.args), self.returncode,
            _clip(self.stdout), _clip(self.stderr))


def _shell_quote(s):
    if s and re.fullmatch(r"[A-Za-z0-9_./:=@%+,-]+", s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"


def _clip(s):
    s = s.rstrip("\n")
    if len(s) > OUTPUT_SHOWN:
        s = s[:OUTPUT_SHOWN] + "... (%d more characters)" % (
            len(s) - OUTPUT_SHOWN)
    return s if s else "(empty)"


def run(args, input=None, env=None, timeout=120, cwd=None):
    """Runs a command to completion with child_env() (plus env) and
    returns a Result; a timeout yields returncode None (the child is
    killed by subprocess)."""
    if isinstance(input, str):
        input = input.encode()
    try:
        p = subprocess.run([str(a) for a in args], input=input,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=child_env(env), timeout=timeout, cwd=cwd)
        return Result(args, p.returncode, p.stdout, p.stderr)
    except subprocess.TimeoutExpired as e:
        return Result(args, None, e.stdout or b"",
                      (e.stderr or b"") + b"\n(timed out after %d s)" % timeout)
    except OSError as e:
        return Result(args, None, b"", str(e).encode())


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (all bound at once, then
    released, so they differ from each other)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---- PEM / openssl helpers -------------------------------------------------

def pem_certs(text):
    """The PEM certificate blocks in text, in order."""
    return [m.group(0).replace("\r\n", "\n") + "\n"
            for m in PEM_CERT_RE.finditer(text)]


def pem_to_der(pem):
    return ssl.PEM_cert_to_DER_cert(pem_certs(pem)[0])


def write(path, data, mode=0o644):
    """Writes str or bytes to path; returns path."""
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def openssl(*args, input=None):
    return run(["openssl"] + list(args), input=input)


def x509_text(path):
    """`openssl x509 -text -noout` of the first certificate in path."""
    r = openssl("x509", "-in", path, "-noout", "-text")
    if not r.ok:
        raise Abort("openssl x509 -text failed on %s" % path, r.describe())
    return r.stdout


def x509_ext(text, name):
    """The value of extension `name` ("X509v3 Key Usage") in `openssl x509
    -text` output as one string (continuation lines joined with "\n"),
    with "critical" reported separately: returns (value, critical) or
    (None, False) when absent."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        head = line.strip()
        if head.startswith(name + ":"):
            indent = len(line) - len(line.lstrip())
            critical = "critical" in head[len(name) + 1:]
            vals = []
            for nxt in lines[i + 1:]:
                if len(nxt) - len(nxt.lstrip()) <= indent or not nxt.strip():
                    break
                vals.append(nxt.strip())
            return "\n".join(vals), critical
    return None, False


def x509_serial(text):
    """The serial number (int) from `openssl x509 -text` output."""
    m = re.search(r"Serial Number:\s*\n\s*([0-9a-fA-F:]+)", text)
    if m:
        return int(m.group(1).replace(":", ""), 16)
    m = re.search(r"Serial Number:\s*(\d+)", text)
    if m:
        return int(m.group(1))
    raise Abort("no serial number in openssl output", text[:OUTPUT_SHOWN])


def pubkey_of(path, kind):
    """The SubjectPublicKeyInfo PEM of a cert ('x509'), CSR ('req') or
    private key ('pkey') file."""
    if kind == "pkey":
        r = openssl("pkey", "-in", path, "-pubout")
    else:
        r = openssl(kind, "-in", path, "-noout", "-pubkey")
    if not r.ok:
        raise Abort("cannot read the public key of %s" % path, r.describe())
    return r.stdout.strip()


# ---- results ---------------------------------------------------------------

class Checker:
    """Counts checks. check() prints "ok" or "FAIL" with details; finish()
    prints the final "NAME: N passed, N failed" line that tests/run reads
    and returns the exit status."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.failures = []

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print("ok    %s" % what, flush=True)
        else:
            self.failed += 1
            self.failures.append(what)
            print("FAIL  %s" % what, flush=True)
            if detail:
                for line in str(detail).rstrip("\n").splitlines():
                    print("        " + line)
            sys.stdout.flush()
        return bool(ok)

    def fail(self, what, detail=""):
        return self.check(False, what, detail)

    def equal(self, got, want, what, detail=""):
        d = "expected: %r\n     got: %r" % (want, got)
        if detail:
            d += "\n" + detail
        return self.check(got == want, what, d)

    def cmd_ok(self, res, what):
        """Checks that a Result exited 0."""
        return self.check(res.ok, what, res.describe())

    def step(self, title):
        print("\n== %s" % title, flush=True)

    def guard(self, title, fn, *args, **kw):
        """Runs one step: an Abort or any exception counts as one failure
        (with its traceback) instead of ending the suite. Returns fn's
        value or None."""
        self.step(title)
        try:
            return fn(*args, **kw)
        except Abort as e:
            self.fail("%s: %s" % (title, e.what), e.detail)
        except Exception:	# noqa: BLE001 - a crashing step is a failure
            self.fail("%s: unexpected exception" % title,
                      traceback.format_exc())
        return None

    def record_stop(self, stop):
        """Records the outcome of Pkid.stop()."""
        rc, graceful = stop
        if rc is None and graceful:
            return		# never started
        self.check(graceful, "pkid exits within %d s of SIGTERM" %
                   STOP_TIMEOUT, "had to SIGKILL it")
        if graceful:
            self.equal(rc, 0, "pkid exit status after SIGTERM")

    def finish(self):
        if self.failures:
            print("\nfailed checks:")
            for f in self.failures:
                print("  - " + f)
        print("%s: %d passed, %d failed" % (self.name, self.passed,
                                             self.failed), flush=True)
        return 0 if self.failed == 0 else 1


# ---- HTTP --------------------------------------------------------------------

class Response:
    """status, headers (lower-case names), body (bytes), text, json
    (parsed body or None)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def error_code(self):
        """error.code of a {"error": {...}} body, else None."""
        if isinstance(self.json, dict) and isinstance(
                self.json.get("error"), dict):
            return self.json["error"].get("code")
        return None

    def error_message(self):
        if isinstance(self.json, dict) and isinstance(
                self.json.get("error"), dict):
            return self.json["error"].get("message")
        return None

    def describe(self):
        return "status %s, content-type %s, body: %s" % (
            self.status, self.header("content-type"), _clip(self.text))


def http_request(host, port, method, path, body=None, headers=None,
                 context=None):
    """One HTTP(S) request on a fresh connection (HTTPS when context is
    given). A server that answers early and closes while the body is still
    being sent (a size limit) is fine: the response is read anyway."""
    if context is not None:
        conn = http.client.HTTPSConnection(host, port, context=context,
                                           timeout=HTTP_TIMEOUT)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT)
    send_error = None
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        hdrs = dict(headers or {})
        if body is not None:
            hdrs.setdefault("Content-Length", str(len(body)))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            try:
                conn.send(body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
                send_error = e
        try:
            resp = conn.getresponse()
            data = resp.read()
        except (ConnectionError, ssl.SSLError, http.client.HTTPException) as e:
            msg = "%s %s: no response (%s: %s)" % (method, path,
                                                   type(e).__name__, e)
            if send_error is not None:
                msg += "; sending the body failed first (%s) - the server " \
                       "closed without reading it and without an answer " \
                       "the client could read" % send_error
            raise Abort(msg)
        return Response(resp.status, resp.getheaders(), data)
    finally:
        conn.close()


# ---- the daemon --------------------------------------------------------------

class Pkid:
    """One pkid installation in workdir: config file, data dir (DATA),
    log file, and the serving process."""

    def __init__(self, bindir, workdir, name="pkid"):
        self.bindir = bindir
        self.pkid = os.path.join(bindir, "pkid")
        self.pkictl = os.path.join(bindir, "pkictl")
        self.dir = workdir
        self.name = name
        self.data_dir = os.path.join(workdir, "var")
        self.config_path = os.path.join(workdir, name + ".json")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.ports = {}
        self._ctx = None

    # -- files
    @property
    def ca_bundle(self):
        return os.path.join(self.data_dir, "ca-bundle.pem")

    @property
    def admin_token_path(self):
        return os.path.join(self.data_dir, "admin.token")

    def admin_token(self):
        return read(self.admin_token_path).strip()

    # -- URLs
    @property
    def mgmt_url(self):
        return "https://127.0.0.1:%d" % self.ports["mgmt"]

    @property
    def https_url(self):
        return "https://127.0.0.1:%d" % self.ports["https"]

    @property
    def http_url(self):
        return "http://127.0.0.1:%d" % self.ports["http"]

    def write_config(self, extra=None):
        """Picks three free ports and writes the config file; extra keys
        are merged in at the top level (dicts one level deep)."""
        https, http_, mgmt = free_ports(3)
        self.ports = {"https": https, "http": http_, "mgmt": mgmt}
        cfg = {"data_dir": self.data_dir,
               "listen": {"https": "127.0.0.1:%d" % https,
                          "http": "127.0.0.1:%d" % http_,
                          "mgmt": "127.0.0.1:%d" % mgmt},
               "log_level": "info"}
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        write(self.config_path, json.dumps(cfg, indent=2) + "\n")
        return cfg

    def init(self):
        """`pkid init --data-dir DATA`; returns the Result."""
        return run([self.pkid, "init", "--data-dir", self.data_dir],
                   timeout=120)

    def mint(self, role, ttl):
        """`pkid token --data-dir DATA --role R --ttl T`: (Result, token)."""
        r = run([self.pkid, "token", "--data-dir", self.data_dir,
                 "--role", role, "--ttl", ttl], timeout=60)
        return r, r.stdout.strip() if r.ok else None

    def start(self, extra_config=None, attempts=3):
        """Writes the config and starts `pkid serve`, stderr and stdout to
        the log file; waits for /healthz. Retries with new ports when a
        listener could not be bound (another process took a port between
        picking and binding). Raises Abort with the log's tail on
        failure."""
        last = ""
        for _ in range(attempts):
            self.write_config(extra_config)
            log = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(
                    [self.pkid, "serve", "--config", self.config_path],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env=child_env())
            finally:
                log.close()
            ok, last = self._wait_ready()
            if ok:
                return
            if self.proc.poll() is None:
                self._kill()
                break
            if not re.search(r"address already in use|bind", last, re.I):
                break
        self.proc = None
        raise Abort("pkid serve did not become ready", last)

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        err = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, "pkid serve exited with status %s; log:\n%s" % (
                    self.proc.returncode, self.log_tail())
            try:
                r = self.http_get("/healthz")
                if r.status == 200:
                    return True, ""
                err = r.describe()
            except (OSError, Abort, http.client.HTTPException) as e:
                err = str(e)
            time.sleep(0.1)
        return False, "no 200 from /healthz within %d s (last: %s); log:\n%s" \
            % (START_TIMEOUT, err, self.log_tail())

    def stop(self):
        """SIGTERM by pid, wait STOP_TIMEOUT; SIGKILL if it did not exit.
        Returns (exit status, graceful); (None, True) if not running."""
        if self.proc is None:
            return None, True
        if self.proc.poll() is not None:
            rc = self.proc.returncode
            self.proc = None
            return rc, True
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
            graceful = True
        except subprocess.TimeoutExpired:
            rc = self._kill()
            graceful = False
        self.proc = None
        return rc, graceful

    def _kill(self):
        self.proc.kill()
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return read(self.log_path)
        except OSError:
            return ""

    def log_tail(self, lines=40):
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- HTTP
    def tls_context(self):
        """TLS client context trusting only DATA/ca-bundle.pem, with
        host-name checking (the server's certificate names 127.0.0.1)."""
        if self._ctx is None:
            self._ctx = ssl.create_default_context(cafile=self.ca_bundle)
        return self._ctx

    def http_get(self, path, headers=None):
        """GET on the plain HTTP listener."""
        return http_request("127.0.0.1", self.ports["http"], "GET", path,
                            headers=headers)

    def api(self, method, path, body=None, token="admin", headers=None):
        """A management API request. body: dict/list (sent as JSON), str or
        bytes (sent raw) or None. token: "admin" (DATA/admin.token), None
        (no Authorization), or the token string itself."""
        hdrs = {}
        if token == "admin":
            token = self.admin_token()
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        return http_request("127.0.0.1", self.ports["mgmt"], method, path,
                            body=body, headers=hdrs,
                            context=self.tls_context())

    def api_json(self, method, path, body=None, token="admin", expect=200):
        """api() that must answer `expect` with a JSON body; returns the
        parsed body or raises Abort."""
        r = self.api(method, path, body=body, token=token)
        if r.status != expect or (r.body and r.json is None):
            raise Abort("%s %s: expected %d with JSON" % (method, path, expect),
                        r.describe())
        return r.json


def jwt_parts(token):
    """(header, payload, signature) of a JWT, the first two decoded."""
    h, p, s = token.split(".")
    return (json.loads(_b64url_decode(h)), json.loads(_b64url_decode(p)), s)


def jwt_encode(header, payload, signature=""):
    """A JWT from header and payload dicts with the given (base64url)
    signature, for forging tokens."""
    return "%s.%s.%s" % (_b64url(json.dumps(header).encode()),
                         _b64url(json.dumps(payload).encode()), signature)


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
