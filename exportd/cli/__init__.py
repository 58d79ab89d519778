"""The `exportd` command: the server's commands (serve, migrate, dev, token) and the client's
(export, exports, types). `main` reads the environment; nothing else in exportd does.

Each side is imported only when one of its commands runs: the client needs none of the
server's imports (a second of start-up), and the server none of the client's. Importing
this package imports nothing else: a Ctrl-C while the rest loads ends in one line (exit
130), not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

EXIT_INTERRUPTED = 130  # exportd.client.errors.EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> None:
    try:
        from exportd.cli.parser import SERVER_COMMANDS, build

        args = build().parse_args(argv)
        if args.command not in SERVER_COMMANDS:
            from pathlib import Path

            from exportd.cli import remote

            sys.exit(remote.run(args, os.environ, cwd=Path.cwd()))
        from exportd.cli import ops
    except KeyboardInterrupt:
        print("exportd: interrupted", file=sys.stderr, flush=True)
        sys.exit(EXIT_INTERRUPTED)
    ops.run(args, os.environ)
