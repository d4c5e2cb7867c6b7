"""/docs (Swagger UI on /openapi.json, its files served here) and the landing page at /.

Without a browser: what / links to, that /docs names nothing outside this origin and its files are
served with their types, that the documented example bodies are valid requests. In Debian's headless
Chromium, driven by selenium through Debian's chromedriver, against the Procfile's web process with
an API key set: the page renders every route of the document, and its example request, sent with the
key entered in the Authorize dialog, queues a job that runs.
"""

import json
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from executor.settings import Settings
from executor.web.app import create_app
from tests.stack import WorkerProcesses, stop_process
from tests.test_web_server import request, start_web

API_KEY = "key-DOCSTEST-3c9e"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30
ASSET_TYPES = {
    ".css": {"text/css"},
    ".js": {"text/javascript", "application/javascript"},
    ".png": {"image/png"},
}


class Links(HTMLParser):
    """Every href and src of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value for name, value in attrs if name in {"href", "src"} and value is not None]


def links_of(page: str) -> list[str]:
    parser = Links()
    parser.feed(page)
    return parser.found


def make_app(**settings: Any) -> Flask:
    return create_app(Settings(**settings), redis=fakeredis.FakeRedis())


@pytest.fixture
def plain_client() -> FlaskClient:
    return make_app().test_client()


def test_the_landing_page_links_to_the_docs_the_dashboard_the_document_and_health(
    plain_client: FlaskClient,
) -> None:
    page = plain_client.get("/")
    assert (page.status_code, page.mimetype) == (200, "text/html")
    links = links_of(page.get_data(as_text=True))
    assert links == ["/docs", "/rq/", "/openapi.json", "/health"]
    for link in links:
        assert plain_client.get(link).status_code == 200, link
    assert "/" not in plain_client.get("/openapi.json").get_json()["paths"]


def test_the_docs_page_loads_everything_from_this_origin(plain_client: FlaskClient) -> None:
    page = plain_client.get("/docs")
    assert (page.status_code, page.mimetype) == (200, "text/html")
    text = page.get_data(as_text=True)
    assert re.findall(r"(?:https?:)?//\w", text) == []
    links = links_of(text)
    assert {link.rsplit("/", 1)[-1] for link in links} == {
        "swagger-ui.css",
        "favicon-32x32.png",
        "swagger-ui-bundle.js",
        "openapi.json",
    }
    assert all(link.startswith("/") and not link.startswith("//") for link in links), links
    # Swagger UI's configuration, the JSON object the page passes it.
    configured = re.search(r"SwaggerUIBundle\(Object\.assign\((\{.*?\}),", text, re.S)
    assert configured is not None, text
    config = json.loads(configured.group(1))
    assert config["url"] == "/openapi.json"
    assert (config["persistAuthorization"], config["validatorUrl"]) == (True, None)
    # Without JavaScript, the routes are still listed.
    assert "<noscript>" in text and "/api/v1/execute" in text


def test_swagger_uis_files_are_served_with_their_types(plain_client: FlaskClient) -> None:
    assets = [
        link for link in links_of(plain_client.get("/docs").get_data(as_text=True)) if "/static/" in link
    ]
    assert len(assets) == 3
    for asset in assets:
        with plain_client.get(asset) as response:
            assert response.status_code == 200, asset
            assert response.mimetype in ASSET_TYPES[Path(asset).suffix], (asset, response.mimetype)
            if asset.endswith(".js"):
                assert b"SwaggerUIBundle" in response.get_data()
    assert plain_client.get("/docs/static/../flask_swagger_ui.py").status_code == 404
    assert plain_client.get("/docs/static/%2e%2e/__init__.py").status_code == 404


def test_the_example_bodies_are_valid_requests() -> None:
    """Each is valid for the deployment's request models; the first is Swagger UI's starting body."""
    app = make_app()
    models = {
        "/api/v1/execute": app.extensions["executor"].request_model,
        "/api/v1/batches": app.extensions["executor"].batch_model,
    }
    document = app.test_client().get("/openapi.json").get_json()
    firsts = {}
    for path, model in models.items():
        examples = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        for example in examples.values():
            model.model_validate_json(json.dumps(example["value"]))
        firsts[path] = next(iter(examples.values()))["value"]
    assert firsts["/api/v1/execute"] == {"code": "print('hello')", "language": "python"}
    assert [job["code"] for job in firsts["/api/v1/batches"]["jobs"]] == ["print('hello')", "print(6 * 7)"]


def test_the_bearer_scheme_is_documented_only_when_keys_are_set() -> None:
    with_keys = make_app(api_keys=(API_KEY,)).test_client().get("/openapi.json").get_json()
    assert with_keys["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert with_keys["security"] == [{"bearer": []}]
    without = make_app().test_client().get("/openapi.json").get_json()
    assert "securitySchemes" not in without["components"] and "security" not in without


# In the browser.

browser_missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
needs_browser = pytest.mark.skipif(
    bool(browser_missing),
    reason=f"no {' or '.join(browser_missing)}: install Aptfile.test's Debian packages (make test does)",
)


@pytest.fixture(scope="module")
def keyed_web(stack_env: dict[str, str], workers: WorkerProcesses) -> Iterator[str]:
    """The Procfile's web process with an API key set, behind the session's workers: its origin."""
    process, port = start_web({**stack_env, "EXECUTOR_API_KEYS": API_KEY})
    yield f"http://127.0.0.1:{port}"
    stop_process(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, WAIT_S)


def visible(driver: WebDriver, css: str) -> WebElement:
    element: WebElement = wait(driver).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css)), f"{css} not shown"
    )
    return element


def click(driver: WebDriver, css: str) -> None:
    clickable = expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, css))
    wait(driver).until(clickable, f"{css} not clickable").click()


def open_docs(driver: WebDriver, origin: str, operations: int) -> None:
    """Load /docs and wait until Swagger UI has rendered `operations` operations."""
    driver.get(f"{origin}/docs")
    wait(driver).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) == operations,
        f"Swagger UI did not render {operations} operations",
    )


def documented_operations(origin: str) -> set[tuple[str, str]]:
    port = int(origin.rsplit(":", 1)[1])
    status, _, document = request(port, "GET", "/openapi.json")
    assert status == 200
    return {(method.upper(), path) for path, methods in document["paths"].items() for method in methods}


@needs_browser
def test_the_page_renders_every_route_of_the_document(browser: WebDriver, keyed_web: str) -> None:
    documented = documented_operations(keyed_web)
    assert len(documented) == 10
    open_docs(browser, keyed_web, len(documented))
    rendered = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    assert rendered == documented
    assert browser.find_element(By.CSS_SELECTOR, "button.btn.authorize").is_displayed()
    # Everything the page loaded came from this origin.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(keyed_web + "/") for url in loaded), loaded


@needs_browser
def test_try_it_out_with_the_key_from_the_authorize_dialog_queues_the_example(
    browser: WebDriver, keyed_web: str
) -> None:
    open_docs(browser, keyed_web, len(documented_operations(keyed_web)))
    # The Authorize dialog, as a person uses it: the key, Authorize, Close.
    click(browser, ".scheme-container button.btn.authorize")
    visible(browser, ".modal-ux input").send_keys(API_KEY)
    click(browser, ".modal-ux button.modal-btn.authorize")
    wait(browser).until(
        lambda d: any(
            button.text == "Logout" for button in d.find_elements(By.CSS_SELECTOR, ".modal-ux button")
        ),
        "the dialog did not take the key",
    )
    click(browser, ".modal-ux button.btn-done")
    wait(browser).until(
        expected_conditions.invisibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")),
        "the dialog did not close",
    )

    operation = "#operations-default-post_api_v1_execute"
    click(browser, f"{operation} .opblock-summary-control")
    click(browser, f"{operation} .try-out__btn")
    body = visible(browser, f"{operation} textarea.body-param__text")
    assert json.loads(body.get_attribute("value") or "") == {"code": "print('hello')", "language": "python"}
    click(browser, f"{operation} button.execute")

    # The server's answer, as the page shows it once it has come.
    status = visible(browser, f"{operation} .live-responses-table .response .response-col_status").text
    answer = visible(browser, f"{operation} .live-responses-table .response-col_description pre").text
    assert status.strip() == "202", answer
    job_id = json.loads(answer)["job_id"]
    # It went to this origin, with the key.
    request_url = visible(browser, f"{operation} .request-url pre").text
    assert request_url == f"{keyed_web}/api/v1/execute"
    assert f"Authorization: Bearer {API_KEY}" in visible(browser, f"{operation} .curl-command").text

    # The job it queued runs.
    port = int(keyed_web.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {API_KEY}"}
    status_code, _, job = request(port, "GET", f"/api/v1/execute/{job_id}?wait=true", headers=headers)
    assert (status_code, job["status"], job["stdout"]) == (200, "success", "hello\n")

    # The key outlives a reload (persistAuthorization).
    open_docs(browser, keyed_web, len(documented_operations(keyed_web)))
    visible(browser, ".scheme-container button.btn.authorize.locked")
