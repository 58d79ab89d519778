"""The dev stack's SMTP sink in a process of its own, so its CPU is counted apart.

python -m bench.queue_sink PORT     # prints "ready", runs until stdin closes
"""

from __future__ import annotations

import sys

from exportd.dev.servers import MailSink


def main(argv: list[str]) -> int:
    sink = MailSink(None, port=int(argv[0])).start()
    try:
        print("ready", flush=True)
        sys.stdin.read()  # until the benchmark closes our stdin (or exits)
    finally:
        sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
