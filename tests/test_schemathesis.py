"""The API against its own document: schemathesis generates requests from /openapi.json
(valid and invalid ones, bounded in number) and sends them to a real ``zoomreel serve``
on loopback; no answer may be a 5xx, and every answer must match the document."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from service_helpers import API_KEY, Serve

pytestmark = pytest.mark.system

#: The upstream toolkit's route: a body without webhook_url waits for the render.
LEGACY = "/v1/image/transform/video"

#: The module's ``api`` (tests/conftest.py), without render threads: the generated jobs
#: only queue (the renders are tested elsewhere).
SERVE_OPTIONS = {"workers": 0, "env": {"ZOOMREEL_MAX_QUEUE_LENGTH": "0",
                                       "ZOOMREEL_ALLOW_PRIVATE_URLS": "0"}}


@pytest.fixture(scope="module")
def api_document(api: Serve) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(api.url + "/openapi.json")


@pytest.mark.parametrize("mode, examples", [(GenerationMode.POSITIVE, 25),
                                             (GenerationMode.NEGATIVE, 15)])
def test_every_answer_matches_the_document_and_none_is_a_5xx(
    api_document: schemathesis.BaseSchema, api: Serve, mode: GenerationMode, examples: int
) -> None:
    operations = [result.ok() for result in api_document.get_all_operations()]
    assert len(operations) >= 8  # every route of the document is exercised
    for operation in operations:

        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode))
        def check(case: schemathesis.Case) -> None:
            # Data the schema allows may still be refused, rightly, for what a schema
            # cannot say: a host that does not resolve or is not public, two forms of one
            # thing at once. Every other check applies.
            if (case.operation.path == LEGACY and isinstance(case.body, dict)
                    and "webhook_url" not in case.body):
                # without it the call waits for its video, and nothing renders here:
                # those calls are tested in test_upstream.py, against rendering workers
                case.body["webhook_url"] = ""
            case.call_and_validate(base_url=api.url, headers={"X-API-Key": API_KEY},
                                   excluded_checks=[positive_data_acceptance], timeout=60)

        try:
            check()
        except Unsatisfiable:  # nothing to get wrong: a route without parameters or body
            assert mode is GenerationMode.NEGATIVE and not operation.body, operation.label
