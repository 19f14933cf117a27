"""A misbehaving server under test for tests/test_sut.py: writes its pid to argv[2], answers
every HTTP request 404 on port argv[1], and (with argv[3] == "ignore-term") ignores SIGTERM."""

import http.server
import signal
import sys
from pathlib import Path

port, pid_file = int(sys.argv[1]), Path(sys.argv[2])
if len(sys.argv) > 3 and sys.argv[3] == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
pid_file.write_text(str(__import__("os").getpid()))


class NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_error(404)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


http.server.HTTPServer(("127.0.0.1", port), NotFound).serve_forever()
