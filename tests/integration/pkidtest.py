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
import urllib.parse

SCRUBBED_ENV = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                "SSL_CERT_DIR", "PKID_URL", "PKID_TOKEN_FILE", "PKID_CACERT")
START_TIMEOUT = 30.0		# seconds until /healthz must answer
STOP_TIMEOUT = 15.0		# seconds SIGTERM may take before SIGKILL
HTTP_TIMEOUT = 30.0		# seconds per HTTP request
OUTPUT_SHOWN = 3000		# characters of stdout/stderr shown per failure
PEM_CERT_RE = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.S)
LINK_RE = re.compile(r'<([^>]*)>((?:\s*;\s*[^;,]+)*)')


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
        self.header_list = list(headers)	# every (name, value), in order
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.text = body.decode("utf-8", "replace")
        try:
            self.json = json.loads(self.text) if body else None
        except ValueError:
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def header_values(self, name):
        """Every value of a header that may repeat (Link), in order."""
        return [v for k, v in self.header_list if k.lower() == name.lower()]

    def links(self, rel):
        """The targets of the Link headers with this rel (RFC 8288), in
        order; a header may carry several comma-separated links."""
        out = []
        for value in self.header_values("link"):
            for m in LINK_RE.finditer(value):
                rels = re.search(r';\s*rel="?([^";,]+)"?', m.group(2))
                if rels and rel in rels.group(1).split():
                    out.append(m.group(1))
        return out

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

    # -- ACME and inventory helpers (the ACME and EST suites)
    @property
    def acme_directory_url(self):
        return self.https_url + "/acme/directory"

    def ctl_cmd(self, args, json_out=True):
        """A pkictl command line against this installation (admin token,
        DATA/ca-bundle.pem)."""
        cmd = [self.pkictl, "--url", self.mgmt_url, "--token-file",
               self.admin_token_path, "--cacert", self.ca_bundle]
        if json_out:
            cmd.append("--json")
        return cmd + [str(a) for a in args]

    def ctl(self, *args, json_out=True, timeout=60):
        """Runs pkictl (admin token, --json unless json_out is False);
        returns the Result."""
        return run(self.ctl_cmd(args, json_out), timeout=timeout)

    def ctl_json(self, *args):
        """Runs pkictl --json; returns the parsed output or raises
        Abort."""
        r = self.ctl(*args)
        try:
            if r.ok:
                return json.loads(r.stdout)
        except ValueError:
            pass
        raise Abort("pkictl %s failed" % " ".join(str(a) for a in args),
                    r.describe())

    def inventory(self, name=None):
        """Every inventory entry (GET /api/v1/certificates, all pages; with
        name, only those whose name or a SAN contains it), as the API lists
        them."""
        out, token = [], None
        for _ in range(INVENTORY_PAGES_MAX):
            path = "/api/v1/certificates?limit=1000"
            if name:
                path += "&name=" + urllib.parse.quote(name, safe="")
            if token:
                path += "&page_token=" + urllib.parse.quote(token, safe="")
            page = self.api_json("GET", path)
            out.extend(page.get("certificates") or [])
            token = page.get("next_page_token")
            if not token:
                return out
        raise Abort("inventory: more than %d pages" % INVENTORY_PAGES_MAX)

    def find_issued(self, serial, name=None):
        """The inventory entry and version holding certificate `serial`
        (int): (certificate, version) or (None, None). name (a SAN of the
        certificate) narrows the search to the entries it matches; every
        version of each candidate is looked at."""
        for c in self.inventory(name):
            cur = c.get("current")
            if isinstance(cur, dict) and _serial_int(cur.get("serial")) == \
                    serial:
                return c, cur
            vs = self.api_json("GET", "/api/v1/certificates/%s/versions" %
                               urllib.parse.quote(str(c.get("id")), safe=""))
            for v in vs.get("versions") or []:
                if _serial_int(v.get("serial")) == serial:
                    return c, v
        return None, None

    def db_count(self, table_file):
        """Records in one store table, read with `db_dump -p` from
        DATA/db (the server must be stopped). table_file is the table's
        file name ("acme-account.db")."""
        if self.running():
            raise Abort("db_count(%s) needs the server stopped" % table_file)
        r = run(["db_dump", "-p", "-h", os.path.join(self.data_dir, "db"),
                 table_file], timeout=60)
        if not r.ok:
            raise Abort("db_dump %s failed" % table_file, r.describe())
        lines = r.stdout.splitlines()
        try:
            body = lines[lines.index("HEADER=END") + 1:lines.index("DATA=END")]
        except ValueError:
            raise Abort("db_dump %s: unexpected output" % table_file,
                        r.describe())
        return len(body) // 2


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


def _serial_int(v):
    """A serial given as hex text (any case, with or without colons) or
    an int, as an int; None when it is neither."""
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            return int(v.replace(":", ""), 16)
        except ValueError:
            return None
    return None


INVENTORY_PAGES_MAX = 100	# pages of 1000 certificates Pkid.inventory reads


# ---- other processes ---------------------------------------------------------

class Process:
    """A helper daemon (mock DNS server, ...) started with child_env(),
    output to a log file, stopped by pid."""

    def __init__(self, name, args, log_path, env=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.log_path = log_path
        self.env = env
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         env=child_env(self.env))
        finally:
            log.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; returns the exit
        status (None when it was never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        rc = self.proc.returncode
        self.proc = None
        return rc

    def log_tail(self, lines=40):
        try:
            return "\n".join(read(self.log_path).splitlines()[-lines:])
        except OSError:
            return ""


def free_udp_tcp_port(attempts=20):
    """A port free on 127.0.0.1 for both TCP and UDP (a DNS server)."""
    for _ in range(attempts):
        port = free_ports(1)[0]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise Abort("no port free for both TCP and UDP")


DNS_TYPES = {"A": 1, "TXT": 16, "AAAA": 28, "CAA": 257}


def dns_query(port, name, qtype="A", timeout=2.0):
    """One UDP DNS query to 127.0.0.1:port; returns (rcode, answers)
    where answers is the number of answer records, or None on timeout."""
    qid = int.from_bytes(os.urandom(2), "big")
    q = qid.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + DNS_TYPES[qtype].to_bytes(2, "big") + b"\x00\x01"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(q, ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(data) < 12 or data[:2] != q[:2]:
        return None
    return data[3] & 0x0F, int.from_bytes(data[6:8], "big")


class ChallTestSrv(Process):
    """pebble-challtestsrv as a mock DNS server answering every A query
    with 127.0.0.1 (AAAA with nothing), with only the DNS and management
    listeners on, on ports picked at run time. set_txt()/clear_txt() go
    through its management API."""

    READY_TIMEOUT = 15.0

    def __init__(self, workdir, binary="pebble-challtestsrv"):
        super().__init__("pebble-challtestsrv", [], os.path.join(
            workdir, "challtestsrv.log"))
        self.binary = binary
        self.dns_port = None
        self.mgmt_port = None

    @property
    def mgmt_url(self):
        return "http://127.0.0.1:%d" % self.mgmt_port

    @property
    def resolver(self):
        return "127.0.0.1:%d" % self.dns_port

    def start(self, attempts=3):
        """Starts it and waits until DNS and management both answer;
        retries with new ports when one was taken in between."""
        for _ in range(attempts):
            self.dns_port = free_udp_tcp_port()
            self.mgmt_port = free_ports(1)[0]
            self.args = [self.binary, "-defaultIPv4", "127.0.0.1",
                         "-defaultIPv6", "", "-http01", "", "-https01", "",
                         "-tlsalpn01", "",
                         "-dns01", "127.0.0.1:%d" % self.dns_port,
                         "-management", "127.0.0.1:%d" % self.mgmt_port]
            super().start()
            deadline = time.monotonic() + self.READY_TIMEOUT
            while time.monotonic() < deadline and self.running():
                ans = dns_query(self.dns_port, "ready.invalid", "A", 0.5)
                if ans is not None and self._mgmt_up():
                    return
                time.sleep(0.1)
            self.stop()
        raise Abort("pebble-challtestsrv did not start", self.log_tail())

    def _mgmt_up(self):
        try:
            s = socket.create_connection(("127.0.0.1", self.mgmt_port), 1)
            s.close()
            return True
        except OSError:
            return False

    def _post(self, path, obj):
        r = http_request("127.0.0.1", self.mgmt_port, "POST", path,
                         body=json.dumps(obj).encode(),
                         headers={"Content-Type": "application/json"})
        if r.status != 200:
            raise Abort("challtestsrv %s failed" % path, r.describe())

    def set_txt(self, host, value):
        """Adds a TXT value for host ("_acme-challenge.NAME.")."""
        self._post("/set-txt", {"host": host, "value": value})

    def clear_txt(self, host):
        self._post("/clear-txt", {"host": host})


class ChallengeHTTPServer:
    """A threaded HTTP server on 127.0.0.1:port answering http-01
    validation requests: GET /.well-known/acme-challenge/TOKEN returns
    tokens[TOKEN] (set by the test) or the file TOKEN in webroot (written
    by a client or its hook); anything else is 404. `requests` records
    (path, status) of every request served. Starts at once; stop() closes
    the port (validations then get "connection refused"), start() opens
    it again."""

    PREFIX = "/.well-known/acme-challenge/"

    def __init__(self, port, webroot=None):
        self.port = port
        self.webroot = webroot
        self.tokens = {}
        self.requests = []
        self.server = None
        self.thread = None
        self.start()

    def start(self):
        import http.server
        import threading
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):	# noqa: N802 - http.server naming
                status, body = owner._answer(self.path)
                owner.requests.append((self.path, status))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def _answer(self, path):
        if not path.startswith(self.PREFIX):
            return 404, b"not found\n"
        token = path[len(self.PREFIX):]
        if token in self.tokens:
            return 200, self.tokens[token].encode()
        if self.webroot and re.fullmatch(r"[A-Za-z0-9_-]+", token):
            try:
                with open(os.path.join(self.webroot, token), "rb") as f:
                    return 200, f.read()
            except OSError:
                pass
        return 404, b"no such token\n"

    def stop(self):
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=STOP_TIMEOUT)
        self.server = None


# ---- CRLs --------------------------------------------------------------------

def crl_wait_for(cert_path, serial, timeout, save_path):
    """Polls the CRL named by the CRL distribution point of the
    certificate in cert_path (an http:// URL) until it lists serial (int);
    the CRL is saved to save_path. Returns (listed, `openssl crl -text`
    output of the last CRL fetched)."""
    cdp, _ = x509_ext(x509_text(cert_path), "X509v3 CRL Distribution Points")
    m = re.search(r"URI:http://([^/\s:]+):(\d+)(/\S*)", cdp or "")
    if not m:
        raise Abort("%s has no http CRL distribution point" % cert_path,
                    cdp or "")
    host, port, path = m.group(1), int(m.group(2)), m.group(3)
    deadline = time.monotonic() + timeout
    text = ""
    while True:
        r = http_request(host, port, "GET", path)
        if r.status == 200:
            write(save_path, r.body)
            res = openssl("crl", "-inform", "DER", "-in", save_path, "-noout",
                          "-text")
            text = res.stdout
            for line in text.splitlines():
                if "Serial Number:" in line:
                    v = _serial_int(line.split(":", 1)[1].strip())
                    if v == serial:
                        return True, text
        if time.monotonic() > deadline:
            return False, text or r.describe()
        time.sleep(0.5)
