#!/usr/bin/env python3
"""
webhook_receiver — a small HTTPS server that records the webhook
deliveries pkid makes, for tests/integration/lifecycle_test.

    webhook_receiver.py --cert CERT --key KEY --out FILE.jsonl \
        --port-file FILE [--port N] [--fail-first PREFIX ...]

Listens on 127.0.0.1 (port 0 = one the kernel picks; the port actually
bound is written to --port-file once the server accepts connections) and
answers every POST with 200 and an empty JSON object, except that with
--fail-first PREFIX the first POST of each X-Pkid-Delivery id whose path
starts with PREFIX gets 503 (so the sender's retry can be observed).
Other methods get 405.

Each POST is appended to --out as one JSON line:
    {"time": epoch seconds (float), "path", "status" (what it answered),
     "headers": {lower-case name: value}, "body": text (UTF-8, invalid
     bytes replaced), "body_b64": the exact body bytes in base64}
The line is flushed before the answer is sent, so a test that saw the
sender finish finds the line. It verifies nothing itself (signatures and
bodies are the test's business). Stops on SIGTERM or SIGINT.

Python 3 standard library only.
"""

import argparse
import base64
import http.server
import json
import os
import signal
import ssl
import sys
import threading
import time

BODY_MAX = 1024 * 1024		# bytes of one request body accepted
HEADER_TIMEOUT = 10		# seconds a connection may take per request


class Recorder:
    """Appends one JSON line per request to a file; thread-safe. Tracks
    the delivery ids already failed once per --fail-first prefix."""

    def __init__(self, path, fail_first):
        self.lock = threading.Lock()
        self.out = open(path, "a", encoding="utf-8")
        self.fail_first = list(fail_first)
        self.failed_once = set()

    def status_for(self, path, delivery):
        """503 for the first delivery attempt under a --fail-first
        prefix, else 200."""
        for prefix in self.fail_first:
            if path.startswith(prefix):
                key = (prefix, delivery)
                with self.lock:
                    if key not in self.failed_once:
                        self.failed_once.add(key)
                        return 503
        return 200

    def record(self, entry):
        line = json.dumps(entry, sort_keys=True)
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()
            os.fsync(self.out.fileno())

    def close(self):
        with self.lock:
            self.out.close()


def make_handler(recorder):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = HEADER_TIMEOUT

        def do_POST(self):	# noqa: N802 - http.server naming
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > BODY_MAX:
                self._answer(400, b'{"error": "bad Content-Length"}')
                return
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = recorder.status_for(
                self.path, headers.get("x-pkid-delivery", ""))
            recorder.record({
                "time": time.time(),
                "path": self.path,
                "status": status,
                "headers": headers,
                "body": body.decode("utf-8", "replace"),
                "body_b64": base64.b64encode(body).decode(),
            })
            self._answer(status, b"{}" if status == 200 else
                         b'{"error": "try again"}')

        def _refuse(self):
            self._answer(405, b'{"error": "POST only"}')

        do_GET = do_PUT = do_DELETE = do_PATCH = _refuse	# noqa: N815

        def _answer(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("webhook_receiver: %s %s\n" % (
                self.address_string(), fmt % args))

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cert", required=True, help="PEM certificate")
    ap.add_argument("--key", required=True, help="PEM private key")
    ap.add_argument("--out", required=True, help="JSONL file to append to")
    ap.add_argument("--port-file", required=True,
                    help="file the bound port is written to")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fail-first", action="append", default=[],
                    metavar="PREFIX",
                    help="answer 503 to the first attempt of each delivery "
                         "whose path starts with PREFIX")
    args = ap.parse_args()

    recorder = Recorder(args.out, args.fail_first)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    srv = Server(("127.0.0.1", args.port), make_handler(recorder))
    # Handshake per connection in its handler thread (a slow or broken
    # client does not block accept()).
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                 do_handshake_on_connect=False)

    def stop(signum, frame):
        # shutdown() waits for serve_forever: call it from another thread.
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, args.port_file)
    try:
        srv.serve_forever(poll_interval=0.1)
    finally:
        srv.server_close()
        recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
