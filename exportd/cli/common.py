"""What every `exportd` command shares: stopping with a message, and argument types."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop with `message`, one `exportd: ` line per line of it."""
    for line in message.splitlines():
        print(f"exportd: {line}", file=sys.stderr)
    raise SystemExit(code)


def tcp_port(text: str) -> int:
    """An argparse type: a port to listen on, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def count(text: str) -> int:
    """An argparse type: a whole number of at least 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return value
