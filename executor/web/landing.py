"""/: a small page for people who open the service's address, linking to what they can look at.

A blueprint of its own, so /openapi.json (which documents the API's routes) leaves it out.
"""

from flask import Blueprint, Response, request, url_for

from executor.web.dashboard import DASHBOARD_PREFIX

landing = Blueprint("landing", __name__)


@landing.get("/")
def landing_page() -> Response:
    """What this service is, and links to its docs, dashboard, document and health."""
    links = (
        (url_for("docs.docs_page"), "/docs", "the API, tried out in the browser (Swagger UI)"),
        (f"{request.script_root}{DASHBOARD_PREFIX}/", "/rq", "the queue's dashboard: queues, workers, jobs"),
        (url_for("docs.openapi_document"), "/openapi.json", "the API as an OpenAPI 3.1 document"),
        (url_for("api.health"), "/health", "whether Redis answers, and the workers and queue"),
    )
    items = "\n".join(f'<li><a href="{href}">{text}</a>: {what}</li>' for href, text, what in links)
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>executor</title>
<style>body {{ font-family: sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; }}</style>
</head>
<body>
<h1>executor</h1>
<p>Runs untrusted programs in a sandbox for other programs: POST one to <code>/api/v1/execute</code>,
then read its result.</p>
<ul>
{items}
</ul>
</body>
</html>
"""
    return Response(page, mimetype="text/html")
