"""The OpenAPI 3 document: its paths are the app's routes, its schemas the pydantic models that
validate requests and shape answers; what each route does and answers is written here."""

import re
from typing import Any

from pydantic import BaseModel
from werkzeug.routing import Map

from executor.jobs.batches import BatchView
from executor.jobs.request import BatchRequest, ExecuteRequest
from executor.jobs.views import JobView
from executor.web.metrics import metrics
from executor.web.routes import api
from executor.web.schemas import BatchAccepted, ErrorResponse, Health, JobAccepted, LanguageInfo

REF = "#/components/schemas/{model}"
JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
BATCH_ID = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
WAIT = {
    "name": "wait",
    "in": "query",
    "required": False,
    "description": "Wait for the result, at most the job's timeout plus a small margin.",
    "schema": {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no"]},
}


# Request bodies for Swagger UI's "Try it out" (it starts from the first), within the default limits.
EXECUTE_EXAMPLES: dict[str, Any] = {
    "hello": {"summary": "A Python program", "value": {"code": "print('hello')", "language": "python"}},
    "stdin": {
        "summary": "With standard input and limits",
        "value": {
            "code": "print(input()[::-1])",
            "language": "python",
            "stdin": "hello",
            "timeout": 2,
            "memory_mb": 64,
        },
    },
    "tests": {
        "summary": "Judged against test cases",
        "value": {
            "code": "print(sum(map(int, input().split())))",
            "language": "python",
            "tests": [
                {"stdin": "1 2", "expected_output": "3\n"},
                {"stdin": "40 2", "expected_output": "42\n"},
            ],
        },
    },
}
BATCH_EXAMPLES: dict[str, Any] = {
    "two": {
        "summary": "Two Python programs",
        "value": {
            "jobs": [
                {"code": "print('hello')", "language": "python", "ref": "hello"},
                {"code": "print(6 * 7)", "language": "python", "ref": "answer"},
            ]
        },
    },
}


def _content(model: str, examples: dict[str, Any] | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": REF.format(model=model)}}
    if examples:
        media["examples"] = examples
    return {"application/json": media}


def _errors(*statuses: int) -> dict[str, Any]:
    """Error responses, all of the one documented shape."""
    return {
        str(status): {"description": "Error", "content": _content("ErrorResponse")} for status in statuses
    }


def build_openapi(
    request_model: type[ExecuteRequest], batch_model: type[BatchRequest], authenticated: bool, url_map: Map
) -> dict[str, Any]:
    """The whole document for this deployment's limits; its paths are the app's own routes."""
    models: list[type[BaseModel]] = [
        request_model,
        batch_model,
        JobAccepted,
        JobView,
        BatchAccepted,
        BatchView,
        LanguageInfo,
        Health,
        ErrorResponse,
    ]
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    operations = _operations((401,) if authenticated else ())
    paths: dict[str, dict[str, Any]] = {}
    for rule in url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in (api.name, metrics.name):
            continue  # the dashboard, these documents themselves
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            # A route without its documentation is a KeyError here, which the tests see.
            operation = operations[(rule.endpoint, method)]
            paths.setdefault(_openapi_path(rule.rule), {})[method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "executor", "version": "1", "description": "Runs untrusted programs in a sandbox."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if authenticated:
        document["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "One of EXECUTOR_API_KEYS, sent as 'Authorization: Bearer <key>'.",
            }
        }
        document["security"] = [{"bearer": []}]
    return document


def _operations(auth: tuple[int, ...]) -> dict[tuple[str, str], dict[str, Any]]:
    """What each route of the API does and answers, by endpoint and method."""
    return {
        ("api.submit", "POST"): {
            "summary": "Queue one program",
            "parameters": [WAIT],
            "requestBody": {"required": True, "content": _content("ExecuteRequest", EXECUTE_EXAMPLES)},
            "responses": {
                "200": {"description": "Finished in time (with ?wait=true)", "content": _content("JobView")},
                "202": {
                    "description": "Queued",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": _content("JobAccepted"),
                },
                **_errors(400, *auth, 413, 415, 422, 429, 503),
            },
        },
        ("api.poll", "GET"): {
            "summary": "Poll a job (with ?wait=true: hold the answer until it ends)",
            "description": (
                "A repeat poll of a job that has not ended, sooner than EXECUTOR_POLL_PACE_MS "
                "(default 50 ms) after the previous poll's answer, is answered when that time has "
                "passed, or at once when the job ends."
            ),
            "parameters": [JOB_ID, WAIT],
            "responses": {
                "200": {"description": "The job", "content": _content("JobView")},
                **_errors(*auth, 404, 422, 429, 503),
            },
        },
        ("api.events", "GET"): {
            "summary": "The job's output as it is written, as server-sent events, ending with its result",
            "parameters": [JOB_ID],
            "responses": {
                "200": {
                    "description": "Events: status, stdout, stderr, then result",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                **_errors(*auth, 404, 429, 503),
            },
        },
        ("api.cancel", "DELETE"): {
            "summary": "Cancel a job",
            "parameters": [JOB_ID],
            "responses": {
                "200": {"description": "Canceled", "content": _content("JobView")},
                **_errors(*auth, 404, 409, 429, 503),
            },
        },
        ("api.submit_batch", "POST"): {
            "summary": "Queue a batch of programs, all or none",
            "requestBody": {"required": True, "content": _content("BatchRequest", BATCH_EXAMPLES)},
            "responses": {
                "202": {
                    "description": "Queued",
                    "headers": {"Location": {"schema": {"type": "string"}}},
                    "content": _content("BatchAccepted"),
                },
                **_errors(400, *auth, 413, 415, 422, 429, 503),
            },
        },
        ("api.poll_batch", "GET"): {
            "summary": "A batch's counts and jobs (with ?wait=true: held until every job ends, at most 60 s)",
            "parameters": [BATCH_ID, WAIT],
            "responses": {
                "200": {"description": "The batch", "content": _content("BatchView")},
                **_errors(*auth, 404, 422, 429, 503),
            },
        },
        ("api.cancel_batch", "DELETE"): {
            "summary": "Cancel every job of a batch that has not ended",
            "parameters": [BATCH_ID],
            "responses": {
                "200": {"description": "The batch", "content": _content("BatchView")},
                **_errors(*auth, 404, 429, 503),
            },
        },
        ("api.languages", "GET"): {
            "summary": "Languages programs can be written in",
            "responses": {
                "200": {
                    "description": "The languages",
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": {"$ref": REF.format(model="LanguageInfo")}}
                        }
                    },
                },
                **_errors(*auth, 429, 503),
            },
        },
        ("metrics.show_metrics", "GET"): {
            "summary": "Counts and histograms of jobs, requests and callbacks, in the Prometheus text format",
            "description": "Behind the dashboard's basic auth when EXECUTOR_DASHBOARD_PASSWORD is set.",
            "security": [],  # no API key: the dashboard's password, when set
            "responses": {
                "200": {
                    "description": "Every metric",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **_errors(401, 503),
            },
        },
        ("api.health", "GET"): {
            "summary": "Whether Redis answers, and the workers and queue",
            "security": [],  # open, for load balancers and probes
            "responses": {
                "200": {"description": "Healthy", "content": _content("Health")},
                "503": {"description": "Redis unreachable", "content": _content("Health")},
            },
        },
    }


def _openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /api/v1/execute/<job_id> becomes /api/v1/execute/{job_id}."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)
