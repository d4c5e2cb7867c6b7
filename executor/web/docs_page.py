"""/openapi.json and a page at /docs for people to read it."""

import html
import json
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from executor.web.openapi import build_openapi
from executor.web.services import services

docs = Blueprint("docs", __name__)


@docs.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3 document of every route."""
    return jsonify(_document())


@docs.get("/docs")
def docs_page() -> Response:
    """A self-contained page (no CDN) listing the routes and the request schema."""
    document = _document()
    rows = "".join(
        f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>{html.escape(path)}</code></td>"
        f"<td>{html.escape(operation.get('summary', ''))}</td>"
        f"<td>{html.escape(', '.join(operation['responses']))}</td></tr>"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    )
    schemas = html.escape(json.dumps(document["components"]["schemas"], indent=2))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>executor API</title></head><body>"
        "<h1>executor API</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>.</p>"
        "<table border='1' cellpadding='4'>"
        "<tr><th>method</th><th>path</th><th>what</th><th>statuses</th></tr>"
        f"{rows}</table><h2>Schemas</h2><pre>{schemas}</pre></body></html>"
    )
    return Response(page, mimetype="text/html")


def _document() -> dict[str, Any]:
    current = services()
    return build_openapi(
        current.request_model, current.batch_model, bool(current.settings.api_keys), current_app.url_map
    )
