"""A stand-in for `mlfn.runtime.server serve`: /ping and /invocations on MLFN_PORT (stdlib only)."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._send(200 if self.path == "/ping" else 404, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path != "/invocations":
            return self._send(404, b"")
        if body == b"fail":
            return self._send(400, b'{"error": "bad input"}')
        if body == b"boom":
            return self._send(500, b'{"error": "the model failed"}')
        self._send(200, json.dumps({"echo": body.decode(), "pid": os.getpid(),
                                    "content_type": self.headers.get("content-type")}).encode())

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        print("request", self.requestline, flush=True)


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["MLFN_PORT"])), Handler).serve_forever()
