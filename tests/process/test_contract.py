"""The API document is the contract: a fuzzer (schemathesis) drives a real exportd from its
live /openapi.json with every check on. No 5xx, no response that leaves the document, no
valid request refused, no invalid one accepted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from exportd.api.auth import WEBHOOKS_SCOPE
from tests.support.processes import ROOT, base_env
from tests.support.tokens import make_token

ST: Final = str(Path(sys.executable).parent / "st")
SEED: Final = 20261201
MAX_EXAMPLES: Final = 60  # per operation, besides the coverage phase's own cases
CONFIG: Final = """
seed = {seed}
base-url = "{url}"
hooks = "tests.support.schemathesis_hooks"
suppress-health-check = ["all"]
request-timeout = 10

[generation]
max-examples = {max_examples}
deterministic = true

[auth.openapi.bearer]
bearer = "{token}"

[checks]
enabled = true

# A cursor is opaque: only one the API issued is valid, which no schema can say.
[[operations]]
include-operation-id = "listExports"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "429"]

[[operations]]
include-operation-id = "listDownloads"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404"]

[[operations]]
include-operation-id = "listDeliveries"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404"]

# A download needs a finished file; a link, a token exportd made (neither exists here).
[[operations]]
include-operation-id = "downloadExport"
checks.positive_data_acceptance.expected-statuses = ["302", "401", "404", "409", "410"]

[[operations]]
include-operation-id = "followLink"
checks.positive_data_acceptance.expected-statuses = ["302", "404", "410"]

# A webhook URL must name a public host (which no schema can say); a tenant's are capped.
[[operations]]
include-operation-id = "createWebhook"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "409", "422"]
"""


@pytest.mark.timeout(900)
async def test_a_fuzzer_finds_no_5xx_and_no_broken_promise(
    replicas: Callable[..., Any], tmp_path: Path
) -> None:
    # API only (nothing is built), short long-polls, any recipient, no queued cap in reach.
    (replica,) = await replicas(
        1,
        role="api",
        EXPORTD_MAX_WAIT_S="1",
        EXPORTD_ALLOW_RECIPIENT_OVERRIDE="true",
        EXPORTD_TENANT_MAX_QUEUED="1000000",
    )
    token = make_token(ttl_s=3600, scopes=(WEBHOOKS_SCOPE,))
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{replica.url}/openapi.json", headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        assert r.status == 200, await r.text()
        (tmp_path / "openapi.json").write_text(json.dumps(await r.json()))
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(seed=SEED, url=replica.url, token=token, max_examples=MAX_EXAMPLES)
    )

    done = await asyncio.to_thread(
        subprocess.run,
        [ST, "--no-color", "--config-file", str(config), "run", str(tmp_path / "openapi.json")],
        env=base_env() | {"PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=840,
        check=False,
    )

    report = done.stdout[-12000:] + done.stderr[-4000:] + "\nserver log:\n" + replica.log()[-4000:]
    assert done.returncode == 0, report
    # Every phase ran, stateful (create, read, cancel in sequence) included.
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in done.stdout, report
