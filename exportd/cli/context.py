"""What a client command works with: its arguments, server, streams and environment."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from exportd.client.api import Client
from exportd.client.config import Target
from exportd.client.network import Backoff
from exportd.client.progress import Display, display


@dataclass(frozen=True)
class Context:
    """What a client command works with."""

    args: argparse.Namespace
    target: Target
    env: Mapping[str, str]
    cwd: Path
    out: TextIO
    err: TextIO

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def client(self) -> Client:
        return Client(self.target, backoff=Backoff(retries=self.args.retries))

    def display(self) -> Display:
        return display(self.err, machine_output=self.json)

    def say(self, text: str) -> None:
        """A line for people: on stderr, so stdout stays the command's result."""
        print(text, file=self.err, flush=True)
