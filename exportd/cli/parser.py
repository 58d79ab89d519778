"""The `exportd` command's arguments: the server's commands (serve, migrate, dev, token) and
the client's (export, exports, types). Building it imports neither side."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Final

from exportd.cli.common import count, positive, tcp_port

DESCRIPTION = """\
exportd builds data exports in the background: a client asks for one over HTTP, gets an id
at once, and the file is streamed from PostgreSQL to S3; its owner gets a mail with a link.

Settings come from EXPORTD_* environment variables (see the README). Start with
`exportd dev` to try it on embedded servers with demo data; in another terminal,
`exportd types` and `exportd export orders -p since=2025-01-01` talk to it."""

CLIENT_EPILOG = """\
The server and token come from --url/--token, else EXPORTD_URL/EXPORTD_TOKEN, else the
.exportd-dev/dev.json of an `exportd dev` in this folder or a parent.
Exit codes: 0 done; 1 the export failed, was canceled or expired, or the server refused the
request; 2 usage or configuration, or a file not overwritten without --force; 3 network or
server errors; 130 interrupted."""

SERVER_COMMANDS: Final = frozenset({"serve", "migrate", "dev", "token"})
ROLE_NAMES: Final = ("all", "api", "worker")  # exportd.api.keys.Role
# What `GET /v1/exports?status=` filters on: exportd.model.Status.
STATUS_NAMES: Final = ("queued", "running", "succeeded", "failed", "canceled", "expired")


class Version(argparse.Action):
    """--version, looked up only when asked for (importlib.metadata takes a while to load)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from importlib.metadata import version

        print(f"exportd {version('exportd')}")
        parser.exit()


def client_options() -> argparse.ArgumentParser:
    """The options every client command takes."""
    shared = argparse.ArgumentParser(add_help=False)
    group = shared.add_argument_group("server")
    group.add_argument("--url", help="exportd's URL (default: EXPORTD_URL, or dev.json)")
    group.add_argument("--token", help="bearer token (default: EXPORTD_TOKEN, or dev.json)")
    group.add_argument(
        "--json", action="store_true", help="print JSON on stdout, and nothing else there"
    )
    group.add_argument(
        "--retries",
        type=count,
        default=5,
        help="retries of a request after a network error or a 502/503/504 (default: 5)",
    )
    return shared


def add_server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve_cmd = sub.add_parser(
        "serve",
        help="run the HTTP API and the workers",
        description="Serve the API and build exports until SIGTERM or Ctrl-C; every setting "
        "is checked first, then the databases and the catalog's SQL.",
    )
    serve_cmd.add_argument(
        "--role",
        choices=ROLE_NAMES,
        default="all",
        help="api: only the HTTP API; worker: only build and mail (it answers health, "
        "readiness and metrics); all: both (the default)",
    )
    serve_cmd.add_argument("--host", help="listen address (default: EXPORTD_HOST, 0.0.0.0)")
    serve_cmd.add_argument(
        "--port", type=tcp_port, help="listen port (default: EXPORTD_PORT, 8080)"
    )
    sub.add_parser(
        "migrate",
        help="create or update exportd's tables (once per deploy)",
        description="Apply the schema migrations exportd needs to EXPORTD_DATABASE_URL, in "
        "EXPORTD_DATABASE_SCHEMA; safe when several run at once.",
    )
    dev = sub.add_parser(
        "dev",
        help="everything on embedded servers, with demo data",
        description="Start PostgreSQL, S3 and a mail sink (for whatever EXPORTD_* does not "
        "point elsewhere), load a demo catalog and data, print a token, and serve.",
    )
    dev.add_argument("--port", type=tcp_port, help="listen port (default: EXPORTD_PORT, 8080)")
    dev.add_argument(
        "--data-dir",
        default=".exportd-dev",
        help="where the servers keep data (default: .exportd-dev)",
    )
    token = sub.add_parser(
        "token",
        help="print a bearer token for testing",
        description="Print a token signed with EXPORTD_JWT_SECRET (HS256/384/512) for "
        "EXPORTD_JWT_AUDIENCE: for trying the API; real tokens come from your gateway.",
    )
    token.add_argument("--sub", required=True, help="the user's id")
    token.add_argument("--tenant", required=True, help="the user's tenant")
    token.add_argument("--email", help="where the user's exports are mailed (none: no mail)")
    token.add_argument(
        "--ttl", type=positive, default=3600, help="seconds until it expires (default: 3600)"
    )
    token.add_argument(
        "--scope",
        action="append",
        default=[],
        help="an OAuth scope to grant, e.g. exportd:webhooks (repeatable)",
    )


def add_export_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], shared: argparse.ArgumentParser
) -> None:
    export = sub.add_parser(
        "export",
        parents=[shared],
        help="create an export, follow it, download its file",
        description="Create an export, show its progress, download the file and check its "
        "sha256 and size. Rerunning the same command resumes the same export (an automatic "
        "Idempotency-Key) until the file is saved; with --no-wait, until the export has "
        "finished. An existing -o file is not overwritten without --force. Ctrl-C asks "
        "whether to cancel the export or leave it running.",
        epilog=CLIENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("name", metavar="NAME", help="the export's name (see `exportd types`)")
    export.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter, typed as the catalog declares it; KEY:=JSON sends JSON (repeatable)",
    )
    export.add_argument("--format", help="csv, jsonl, parquet, ... (default: the server's)")
    export.add_argument("--compression", help="none, gzip or zstd (default: none)")
    export.add_argument("--file-name", help="the file's name on the server and in the mail")
    export.add_argument(
        "-o", "--output", help="where to save the file (a folder keeps the server's file name)"
    )
    export.add_argument("--force", action="store_true", help="overwrite the -o file if it exists")
    export.add_argument(
        "--new", action="store_true", help="always create a new export, never resume one"
    )
    export.add_argument(
        "--no-wait", action="store_true", help="create the export, print it and stop"
    )


def add_exports_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], shared: argparse.ArgumentParser
) -> None:
    exports = sub.add_parser(
        "exports",
        help="list, show, wait for, download or cancel your exports",
        description="Your exports on the server.",
    )
    actions = exports.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = actions.add_parser("ls", parents=[shared], help="your exports, newest first")
    ls.add_argument("--status", choices=STATUS_NAMES, help="only exports with this status")
    ls.add_argument("--limit", type=positive, default=20, help="how many (default: 20)")
    ls.add_argument("--cursor", help="the next_cursor of an earlier page")
    for action, what in (
        ("show", "show one export"),
        ("wait", "follow an export until it finishes"),
        ("download", "download a succeeded export's file (sha256 checked)"),
        ("cancel", "cancel a queued or running export"),
    ):
        command = actions.add_parser(action, parents=[shared], help=what, epilog=CLIENT_EPILOG)
        command.add_argument("id", metavar="ID", help="the export's id")
        if action == "download":
            command.add_argument("-o", "--output", help="where to save the file")
            command.add_argument(
                "--force", action="store_true", help="overwrite the file if it exists"
            )
    sub.add_parser(
        "types",
        parents=[shared],
        help="the export catalog: names, formats, parameters",
        epilog=CLIENT_EPILOG,
    )


def build() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="exportd",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action=Version, help="show the version and exit")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_server_commands(sub)
    shared = client_options()
    add_export_command(sub, shared)
    add_exports_command(sub, shared)
    return top
