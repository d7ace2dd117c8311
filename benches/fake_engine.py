#!/usr/bin/env python3
"""A stand-in Docker engine on a unix socket for benches/context.sh: it answers the version
handshake, reads a POST /build body to its end (the build context) and reports an image id.
What a client spends against it is its own context creation and sending, nothing of the engine.

    python3 benches/fake_engine.py /tmp/fake.sock
"""
import http.server
import json
import os
import socketserver
import sys

API = "1.41"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body, content_type="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Api-Version", API)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Api-Version", API)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        if self.path.endswith("/_ping"):
            self.reply(200, "OK", "text/plain")
        elif self.path.endswith("/version"):
            self.reply(200, json.dumps({
                "Version": "20.10.24", "ApiVersion": API, "MinAPIVersion": "1.12",
                "Os": "linux", "Arch": "amd64",
            }))
        else:
            self.reply(404, json.dumps({"message": "not faked"}))

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    left -= len(self.rfile.read(min(left, 1 << 20)))
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    return
                left -= len(chunk)

    def do_POST(self):
        self.read_body()
        if "/build" in self.path:
            lines = [
                {"stream": "Step 1/1 : FROM scratch\n"},
                {"aux": {"ID": "sha256:" + "0" * 64}},
                {"stream": "Successfully built 000000000000\n"},
            ]
            self.reply(200, "".join(json.dumps(l) + "\r\n" for l in lines))
        else:
            self.reply(404, json.dumps({"message": "not faked"}))


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    with Server(path, Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
