"""Hooks for the schemathesis run (loaded through its config's `hooks` key).

A client gives each request of its own an Idempotency-Key of its own: the same key with
another body is refused (422), as the API document says. The fuzzer, left alone, would send
short keys like "0" again and again with different bodies; each valid key it generates is
made unique here (deterministically), and an invalid one is left as it is, so the negative
cases still test how a bad key is refused.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Final

import schemathesis

_VALID_KEY: Final = re.compile(r"[\x20-\x7e]{1,255}")
_numbers = itertools.count(1)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    headers = case.headers
    if headers and _VALID_KEY.fullmatch(str(headers.get("Idempotency-Key", ""))):
        headers["Idempotency-Key"] = f"fuzz-{next(_numbers)}"
    return case
