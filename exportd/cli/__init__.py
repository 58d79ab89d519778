"""The `exportd` command: the server's commands (serve, migrate, dev, token) and the client's
(export, exports, types). `main` reads the environment; nothing else in exportd does.

Each side is imported only when one of its commands runs: the client needs none of the
server's imports (a second of start-up), and the server none of the client's."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from exportd.cli.parser import SERVER_COMMANDS, build


def main(argv: Sequence[str] | None = None) -> None:
    args = build().parse_args(argv)
    if args.command in SERVER_COMMANDS:
        from exportd.cli import ops

        ops.run(args, os.environ)
    else:
        from exportd.cli import remote

        sys.exit(remote.run(args, os.environ, cwd=Path.cwd()))
