"""An HTTP endpoint subscribed to SNS topics, as a real subscriber writes one: it records every
POST (headers and body), confirms subscriptions by following their SubscribeURL, verifies each
document's signature against the certificate at its SigningCertURL (openssl), and answers 200,
or 503 while told to fail.

Used two ways:
- imported by sns_clients.py (Subscriber(), in a thread of the test script);
- run on its own by crates/vigil/tests/cli/sns.rs, to outlive a server restart:

      python sns_subscriber.py PORT_FILE LOG_FILE FAIL_FLAG_FILE TRUSTED_PREFIX

  it writes its port to PORT_FILE, appends one JSON line per POST to LOG_FILE, and answers 503
  while FAIL_FLAG_FILE exists (confirmations are followed either way).

As a careful subscriber does, it trusts a certificate only from a URL under TRUSTED_PREFIX (the
server's URL: a forged document naming another host is not verified) and follows a
SubscribeURL only from a document whose signature verified.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTIFICATION_KEYS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_KEYS = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]


def string_to_sign(doc):
    keys = NOTIFICATION_KEYS if doc["Type"] == "Notification" else CONFIRMATION_KEYS
    out = ""
    for k in keys:
        if k in doc:
            out += f"{k}\n{doc[k]}\n"
    return out.encode()


_certs = {}


def verify(doc, trusted):
    """Whether the document's Signature verifies under the certificate at SigningCertURL, a
    URL under `trusted`."""
    url = doc["SigningCertURL"]
    if not url.startswith(trusted):
        return False
    if url not in _certs:
        with urllib.request.urlopen(url, timeout=10) as r:
            _certs[url] = r.read()
    digest = {"1": "-sha1", "2": "-sha256"}[doc["SignatureVersion"]]
    with tempfile.TemporaryDirectory() as d:
        cert = os.path.join(d, "cert.pem")
        key = os.path.join(d, "key.pem")
        data = os.path.join(d, "data")
        sig = os.path.join(d, "sig")
        with open(cert, "wb") as f:
            f.write(_certs[url])
        with open(data, "wb") as f:
            f.write(string_to_sign(doc))
        with open(sig, "wb") as f:
            f.write(base64.b64decode(doc["Signature"]))
        pub = subprocess.run(
            ["openssl", "x509", "-pubkey", "-noout", "-in", cert],
            check=True,
            capture_output=True,
        ).stdout
        with open(key, "wb") as f:
            f.write(pub)
        r = subprocess.run(
            ["openssl", "dgst", digest, "-verify", key, "-signature", sig, data],
            capture_output=True,
        )
        return r.returncode == 0


class Subscriber:
    """An endpoint on 127.0.0.1; `url(path)` is where to subscribe."""

    def __init__(self, trusted, log_file=None, fail_flag=None, confirm=True):
        self.trusted = trusted
        self.received = []
        self.lock = threading.Lock()
        self.fail = False
        self.confirm = confirm
        self.log_file = log_file
        self.fail_flag = fail_flag
        me = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(n).decode()
                headers = {k.lower(): v for k, v in self.headers.items()}
                failing = me.fail or (me.fail_flag and os.path.exists(me.fail_flag))
                entry = {"path": self.path, "headers": headers, "body": body, "answered": 503 if failing else 200}
                kind = headers.get("x-amz-sns-message-type")
                raw = headers.get("x-amz-sns-rawdelivery") == "true"
                if not raw:
                    try:
                        doc = json.loads(body)
                        entry["doc"] = doc
                        entry["verified"] = verify(doc, me.trusted)
                    except Exception as e:  # noqa: BLE001
                        entry["error"] = repr(e)
                if kind == "SubscriptionConfirmation" and me.confirm and entry.get("verified"):
                    # A real subscriber confirms by following the link, unsigned.
                    threading.Thread(target=me._follow, args=(entry["doc"]["SubscribeURL"],)).start()
                    entry["answered"] = 200
                with me.lock:
                    me.received.append(entry)
                    if me.log_file:
                        with open(me.log_file, "a") as f:
                            f.write(json.dumps(entry) + "\n")
                self.send_response(entry["answered"])
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _follow(self, url):
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
        except Exception as e:  # noqa: BLE001
            print(f"following {url}: {e}", file=sys.stderr)

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def of_type(self, kind, path=None):
        with self.lock:
            return [
                e
                for e in self.received
                if e["headers"].get("x-amz-sns-message-type") == kind and (path is None or e["path"] == path)
            ]


if __name__ == "__main__":
    port_file, log_file, fail_flag, trusted = sys.argv[1:5]
    s = Subscriber(trusted, log_file=log_file, fail_flag=fail_flag)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(s.port))
    os.rename(port_file + ".tmp", port_file)
    threading.Event().wait()
