"""``python -m adopter_app --port 8080 --db notes.db``: serve until SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from adopter_app.app import make_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="adopter_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", type=Path, required=True)
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.db)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever(), which runs in this thread: leave by exiting.
        server.server_close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"adopter_app: serving http://{args.host}:{args.port} with {args.db}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
