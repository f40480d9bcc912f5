"""The HTTP API against its own OpenAPI document: schemathesis drives a live server.

For every operation ``/openapi.json`` describes, schemathesis generates requests
-- valid ones and, from the same document, invalid ones -- and checks each answer:
never a 5xx, status codes, content types, headers and bodies as documented,
invalid input refused with a 4xx.  The number of examples is bounded so that the
test stays well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402
from test_http import HttpServer  # noqa: E402

#: generated requests per operation (and per generation mode)
EXAMPLES = 30

#: Operations whose input is a command line or a glob.  What makes one valid is the
#: command layer's grammar (arity, quoting, a TTL that is a number...), which a JSON
#: Schema cannot state: a schema-valid request may rightly be refused there (400).
#: Every other check still runs on them, and every check runs on the other operations.
GRAMMAR = {"/get", "/exists", "/alias", "/find", "/put", "/batch", "/delete", "/v1/batch", "/v1/keys"}

#: A valid request may also be answered 412: its If-Match / If-None-Match does not hold.
CONFIG = schemathesis.config.SchemathesisConfig.from_dict({
    "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "412", "429"]}},
})


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    server = HttpServer.start(tmp_path_factory.mktemp("schema") / "data", "--max-body", "65536")
    try:
        yield schemathesis.openapi.from_url(f"http://127.0.0.1:{server.port}/openapi.json", config=CONFIG)
    finally:
        status, _, err = server.stop()
    assert status == 0 and "Traceback" not in err and "internal error" not in err, err[-2000:]


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_conforms_to_the_document(case: object) -> None:
    excluded = [positive_data_acceptance] if case.operation.path in GRAMMAR else []  # type: ignore[attr-defined]
    case.call_and_validate(excluded_checks=excluded)  # type: ignore[attr-defined]
