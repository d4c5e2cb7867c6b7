"""The HTTP side: the only package that imports Flask.

- `app.py`: `create_app`, the one way to build the application;
- `routes.py`: the routes of API.md, thin views over `executor.jobs.queue`;
- `schemas.py`: the answers besides a job's view; `errors.py`: every error as JSON;
- `auth.py`: API keys and the dashboard's password; `ratelimit.py`: the optional rate limit;
- `dashboard.py`: rq-dashboard at /rq; `openapi.py` and `docs_page.py`: /openapi.json and /docs;
- `services.py`: what requests share; `gunicorn_config.py`: the web server's settings;
- `metrics.py`: /metrics and the count of every request; `events.py`: live output.

Nothing is imported here: `gunicorn_config` must run before anything imports prometheus-client.
"""
