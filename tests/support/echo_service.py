"""A tiny HTTP service for the stack plugin's own tests, run as a script: by the local
backend from a file, and inside the platform image by the compose backend (``python -c``).

Answers 200 "ok" to every GET and prints ``GET <path>``, the log line the tests look for.
Arguments: ``[PORT [HOST]]`` (default 8000 on 127.0.0.1). ``DIE_AT_START=1`` prints a
fatal line and exits 7 before listening; ``PID_LOG=FILE`` appends the process id to FILE.
"""

import http.server
import os
import pathlib
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        print(f"GET {self.path}", flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    if os.environ.get("PID_LOG"):
        with pathlib.Path(os.environ["PID_LOG"]).open("a") as log:
            log.write(f"{os.getpid()}\n")
    if os.environ.get("DIE_AT_START"):
        print("fatal: cannot open the frobnicator", flush=True)
        sys.exit(7)
    http.server.HTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    main()
else:  # imported by the tests, which hand this file's text to the service they start
    SOURCE = pathlib.Path(__file__).read_text()
