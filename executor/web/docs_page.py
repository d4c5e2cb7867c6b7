"""/openapi.json, and /docs: Swagger UI rendering it, its files served from here (no CDN).

Swagger UI's files are the copy flask-swagger-ui ships (its dist/ folder, Swagger UI 5, which reads
OpenAPI 3.1); its blueprint is not used, so the page and its configuration are ours: the document
and every file from this origin, "Try it out" against this origin (the document names no server),
the API key entered once in "Authorize" and kept across reloads.
"""

import html
import importlib.resources
import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, send_from_directory, url_for

from executor.web.openapi import build_openapi
from executor.web.services import services

docs = Blueprint("docs", __name__)

SWAGGER_UI_FILES = Path(str(importlib.resources.files("flask_swagger_ui") / "dist"))


@docs.get("/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3 document of every route."""
    return jsonify(_document())


@docs.get("/docs/static/<path:filename>")
def swagger_ui_file(filename: str) -> Response:
    """One of Swagger UI's files (send_from_directory refuses a path out of the folder)."""
    return send_from_directory(SWAGGER_UI_FILES, filename)


@docs.get("/docs")
def docs_page() -> Response:
    """Swagger UI on /openapi.json; without JavaScript, the list of routes."""
    config = {
        "url": url_for("docs.openapi_document"),
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        # The key entered in "Authorize" survives a reload (in the browser's localStorage).
        "persistAuthorization": True,
        "displayRequestDuration": True,
        "tryItOutEnabled": False,
        # No badge fetched from swagger.io's validator, and no ?url= to render another document.
        "validatorUrl": None,
        "queryConfigEnabled": False,
    }
    document = _document()
    rows = "".join(
        f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>{html.escape(path)}</code></td>"
        f"<td>{html.escape(operation.get('summary', ''))}</td></tr>"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    )
    static = {name: url_for("docs.swagger_ui_file", filename=name) for name in _FILES}
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>executor API</title>
<link rel="stylesheet" href="{static["swagger-ui.css"]}">
<link rel="icon" type="image/png" href="{static["favicon-32x32.png"]}" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<noscript>
<h1>executor API</h1>
<p>This page needs JavaScript. The document it shows: <a href="{config["url"]}">{config["url"]}</a>.</p>
<table border="1" cellpadding="4"><tr><th>method</th><th>path</th><th>what</th></tr>{rows}</table>
</noscript>
<script src="{static["swagger-ui-bundle.js"]}"></script>
<script>
window.ui = SwaggerUIBundle(Object.assign({_script_json(config)}, {{
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}}));
</script>
</body>
</html>
"""
    return Response(page, mimetype="text/html")


# The files the page loads.
_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '</script>' or '<!--' can end it."""
    return json.dumps(value).replace("<", "\\u003c")


def _document() -> dict[str, Any]:
    current = services()
    return build_openapi(
        current.request_model, current.batch_model, bool(current.settings.api_keys), current_app.url_map
    )
