"""Rules for user text that ends up in a file name, a mail header or a log line: what an
address may look like, and which characters never pass."""

from __future__ import annotations

import re
import unicodedata
from email.utils import parseaddr
from typing import Final

MAX_ADDRESS: Final = 254
# A plain addr-spec (RFC 5321's dot-atom local part, a host name whose last label has a
# letter; `localhost` and intranet names pass): no quoted local parts, comments, IP literals
# or non-ASCII, so nothing in it needs encoding.
_LABEL: Final = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS: Final = re.compile(
    r"(?=.{3,254}$)"
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    rf"@({_LABEL}\.)*(?=[A-Za-z0-9-]*[A-Za-z]){_LABEL}"
)
_LOCAL_MAX: Final = 64
# Controls, format characters (bidi overrides among them), surrogates, private use and
# unassigned code points, and the line and paragraph separators (which str.splitlines and
# mail readers take for line breaks).
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def is_address(value: str) -> bool:
    """Whether `value` is a mail address exportd will put in a To: header."""
    return bool(_ADDRESS.fullmatch(value)) and len(value.partition("@")[0]) <= _LOCAL_MAX


def parse_mailbox(value: str) -> tuple[str, str] | None:
    """(display name, address) from `name@host` or `Display Name <name@host>`; None when the
    address is not plain or the name is not one line of visible text."""
    if one_line(value) != value:
        return None
    name, address = parseaddr(value)
    forms = {address, f"<{address}>", f"{name} <{address}>", f'"{name}" <{address}>'}
    if not is_address(address) or name.strip() != name or value not in forms:
        return None  # another shape: a list, a comment, a group
    return name, address


def is_unsafe(ch: str) -> bool:
    """A character that must not reach a file name, a header or a single log line."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def one_line(value: str, replacement: str = "_") -> str:
    """`value` in NFC with every unsafe character replaced: one line of visible text."""
    return "".join(
        replacement if is_unsafe(ch) else ch for ch in unicodedata.normalize("NFC", value)
    )


# Labels of letters, digits and hyphens, dot-separated: a domain as a Message-ID's right side
# carries it, with nothing that could end the header's angle brackets.
_DOMAIN: Final = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


def is_domain(value: str) -> bool:
    return len(value) <= 253 and _DOMAIN.fullmatch(value) is not None
