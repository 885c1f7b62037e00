"""The web UI as a person uses it, in a real browser (Debian's headless chromium, driven by
selenium through Debian's chromedriver): sign in on the login page, see daily_chain's last run
green in the grid, read a step's container output in its task log, and open the nightly report
from the navigation with its plot loaded; and a script in a report a step wrote does not run.

A screenshot of each step is kept in build/artifacts/ui/ (01-login.png ... 04-report.png), or in
build/artifacts/ui/<project>/ when DOWNLINK_E2E_PROJECT names another stack than the default, so
that two stacks' runs do not overwrite each other's. A step that fails leaves FAILED-<step>.png and
FAILED-<step>.html there instead. Needs chromium and chromedriver (`tools/bootstrap.sh browser`,
which `make test-e2e` runs) and selenium (in the test venv).
"""
import contextlib
import os
import re
import shutil
import tempfile
import time
import urllib.parse
import uuid

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT, TEST_ENV

DAG = "daily_chain"
SAMPLE_NIGHT = "2026-11-24"
LOG_TASK = "index"
ARTIFACTS = os.path.join(ROOT, "build", "artifacts", "ui",
                         *([] if TEST_ENV["DOWNLINK_PROJECT"] == "downlink-test" else [TEST_ENV["DOWNLINK_PROJECT"]]))
WAIT = 45  # seconds for any one thing to show up; the UI fetches everything after the page loads
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1000"]


def css_string(value):
    """value as a quoted CSS string (run ids are free text)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def xpath_string(value):
    return f"'{value}'" if "'" not in value else 'concat("' + value.replace('"', '", \'"\', "') + '")'


# ---------------------------------------------------------------------------------------------
# The run to look at, and the browser


@pytest.fixture(scope="module")
def last_run(stack):
    """daily_chain's most recent run, a success on the sample night. Earlier modules of the suite
    leave one; when run alone (or when the last run is something else) one is triggered here."""
    stack.api.wait_for_dag(DAG)

    def runs():
        return stack.api.get(f"/api/v2/dags/{DAG}/dagRuns?order_by=-run_after&limit=10")["dag_runs"]

    for run in runs():  # the last run must be finished before the UI can show it green
        if run["state"] not in ("success", "failed"):
            stack.api.wait_for_run(DAG, run["dag_run_id"], timeout=1500)
    latest = (runs() or [None])[0]
    if not latest or latest["state"] != "success" or (latest.get("conf") or {}).get("night") != SAMPLE_NIGHT:
        run_id = f"ui_{SAMPLE_NIGHT}_{uuid.uuid4().hex[:6]}"
        state = stack.run_dag(DAG, run_id, conf={"night": SAMPLE_NIGHT}, timeout=1500)
        assert state == "success", {t["task_id"]: t["state"] for t in stack.api.task_instances(DAG, run_id)}
        latest = runs()[0]
        assert latest["dag_run_id"] == run_id, latest
    return latest


@pytest.fixture(scope="module")
def artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    for name in os.listdir(ARTIFACTS):  # only this run's pictures
        if name.endswith((".png", ".html")):
            os.remove(os.path.join(ARTIFACTS, name))
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser(artifacts):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.path.exists(chromium) and os.path.exists(chromedriver)):
        pytest.fail("chromium and chromedriver are needed: run tools/bootstrap.sh browser (or make test-e2e)")
    profile = tempfile.mkdtemp(prefix="downlink-ui-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # Debian's browser; never a downloaded one
    for flag in CHROME_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    # An explicit driver path: selenium does not start Selenium Manager (which would download).
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def step(driver, name):
    """On failure keep what the browser showed: FAILED-<name>.png and .html."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            driver.switch_to.default_content()
            driver.save_screenshot(os.path.join(ARTIFACTS, f"FAILED-{name}.png"))
            with open(os.path.join(ARTIFACTS, f"FAILED-{name}.html"), "w") as fh:
                fh.write(driver.page_source)
        raise


def screenshot(driver, name):
    path = os.path.join(ARTIFACTS, name)
    assert driver.save_screenshot(path), path
    return path


def wait(driver, timeout=WAIT):
    # React may re-render an element between finding it and reading it: look again.
    return WebDriverWait(driver, timeout, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException])


def rgb(driver, element):
    """An element's background as (r, g, b): the UI's theme gives colours as oklch(), so let the
    browser convert it by painting one canvas pixel."""
    return tuple(driver.execute_script(
        "const c = document.createElement('canvas'); c.width = c.height = 1;"
        "const x = c.getContext('2d'); x.fillStyle = getComputedStyle(arguments[0]).backgroundColor;"
        "x.fillRect(0, 0, 1, 1); return Array.from(x.getImageData(0, 0, 1, 1).data);", element)[:3])


def path_of(href):
    return urllib.parse.unquote(urllib.parse.urlsplit(href).path).rstrip("/")


@pytest.fixture(scope="module")
def signed_in(stack, browser, last_run):
    """Sign in through the login page, as a person would (the first page redirects to it)."""
    with step(browser, "01-login"):
        browser.get(stack.web_url + f"/dags/{DAG}")
        username = wait(browser).until(EC.element_to_be_clickable((By.NAME, "username")))
        assert "/auth/login" in browser.current_url
        username.send_keys(stack.api.user)
        browser.find_element(By.NAME, "password").send_keys(stack.api.password)
        submit = wait(browser, 10).until(EC.element_to_be_clickable(
            (By.XPATH, "//form//button[@type='submit'][normalize-space()='Sign in']")))
        screenshot(browser, "01-login.png")
        submit.click()
        wait(browser).until(lambda d: "/auth/login" not in d.current_url)
        # Signed in: the navigation is there, and we came back to the page we asked for.
        wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=nav-dags-link]")))
        assert path_of(browser.current_url) == f"/dags/{DAG}", browser.current_url
    return browser


# ---------------------------------------------------------------------------------------------
# The steps, in order (each starts from where the previous one left the browser, but does not
# depend on it: it gets to its page through the UI's own links)


def test_login_page_signs_the_admin_in(signed_in):
    cookies = {c["name"] for c in signed_in.get_cookies()}
    assert "_token" in cookies, cookies


def test_grid_shows_the_last_run_green(stack, signed_in, last_run):
    driver, run_id = signed_in, last_run["dag_run_id"]
    with step(driver, "02-grid"):
        # To the DAG's page through the Dags list.
        driver.find_element(By.CSS_SELECTOR, "[data-testid=nav-dags-link]").click()
        wait(driver).until(EC.element_to_be_clickable(
            (By.XPATH, f"//a[@href='/dags/{DAG}'][normalize-space()='{DAG}']"))).click()
        wait(driver).until(lambda d: path_of(d.current_url) == f"/dags/{DAG}")

        # The header's "Latest Run" is our run, with a success badge.
        latest = wait(driver).until(EC.visibility_of_element_located(
            (By.XPATH, "//*[@data-testid='stat'][h2[normalize-space()='Latest Run']]//a[contains(@href, '/runs/')]")))
        assert path_of(latest.get_attribute("href")) == f"/dags/{DAG}/runs/{run_id}"
        assert latest.find_element(By.CSS_SELECTOR, "[data-testid=state-badge]").get_attribute("aria-label") == "success"

        # Its bar in the grid is the rightmost one (the newest) and green, and its tooltip says Success.
        bar = wait(driver).until(EC.visibility_of_element_located(
            (By.CSS_SELECTOR, f"div[data-run-id={css_string(run_id)}]:not([data-task-id]) a[href*='/runs/'] > div")))
        rightmost = driver.execute_script(
            "const bars = [...document.querySelectorAll(\"div[data-run-id]:not([data-task-id]) a[href*='/runs/']\")];"
            "bars.sort((a, b) => b.getBoundingClientRect().x - a.getBoundingClientRect().x);"
            "return bars.length ? bars[0].href : null;")
        assert rightmost and path_of(rightmost) == f"/dags/{DAG}/runs/{run_id}", rightmost
        r, g, b = rgb(driver, bar)
        assert g > 90 and g > r + 50 and g > b + 50, f"run bar is not green: rgb{(r, g, b)}"
        ActionChains(driver).move_to_element(bar).perform()
        tooltip = wait(driver).until(EC.visibility_of_element_located(
            (By.XPATH, f"//*[@data-testid='basic-tooltip'][contains(., {xpath_string('Run ID: ' + run_id)})]")))
        assert "State: Success" in tooltip.text, tooltip.text

        # And the cells of its first, logged and last steps are green too.
        for task in ("download", LOG_TASK, "report"):
            badge = driver.find_element(By.CSS_SELECTOR, f"div[data-run-id={css_string(run_id)}]"
                                        f"[data-task-id={css_string(task)}] [data-testid=task-state-badge]")
            r, g, b = rgb(driver, badge)
            assert g > r + 50 and g > b + 50, f"{task} is not green: rgb{(r, g, b)}"
        screenshot(driver, "02-grid.png")


def test_task_log_shows_the_containers_output(stack, signed_in, last_run):
    driver, run_id = signed_in, last_run["dag_run_id"]
    night = (last_run.get("conf") or {}).get("night", SAMPLE_NIGHT)
    # What `downlink index` prints at the end, inside its container (see steps.index).
    expected = re.compile(rf"night {re.escape(night)}: \d+ files indexed, \d+ unreadable")
    with step(driver, "03-log"):
        if path_of(driver.current_url) != f"/dags/{DAG}":
            driver.get(stack.web_url + f"/dags/{DAG}")
        # Click the task's cell in the grid: the task instance page opens on its Logs tab.
        cell = wait(driver).until(EC.element_to_be_clickable(
            (By.CSS_SELECTOR, f"[data-testid={css_string(f'grid-{run_id}-{LOG_TASK}')}]")))
        cell.click()
        wait(driver).until(lambda d: path_of(d.current_url) == f"/dags/{DAG}/runs/{run_id}/tasks/{LOG_TASK}")
        wait(driver).until(EC.visibility_of_element_located((By.XPATH, "//a[@title='Logs'][@aria-current='page']")))

        def output_line(d):
            for line in d.find_elements(By.CSS_SELECTOR, "[data-testid=virtualized-list] [data-testid^=virtualized-item-]"):
                text = line.get_attribute("textContent") or ""
                if expected.search(text) and line.is_displayed():
                    return line
            return False

        try:
            line = wait(driver).until(output_line)
        except TimeoutException:
            shown = [e.get_attribute("textContent") for e in driver.find_elements(
                By.CSS_SELECTOR, "[data-testid=virtualized-list] [data-testid^=virtualized-item-]")]
            raise AssertionError(f"no line matching {expected.pattern!r} in the log view: {shown}") from None
        assert "INFO" in line.text
        ActionChains(driver).move_to_element(line).perform()  # away from the cell: its tooltip would hide the log
        screenshot(driver, "03-log.png")


def test_nightly_report_opens_from_the_navigation_with_its_plot(stack, signed_in, last_run):
    driver = signed_in
    night = (last_run.get("conf") or {}).get("night", SAMPLE_NIGHT)
    with step(driver, "04-report"):
        # One click: the reports plugin's own entry in the navigation bar opens the newest report.
        entry = wait(driver).until(EC.element_to_be_clickable(
            (By.CSS_SELECTOR, "a[aria-label='Nightly reports'][href$='/plugin/nightly-reports']")))
        entry.click()
        wait(driver).until(lambda d: "/plugin/nightly-reports" in d.current_url)
        # The UI shows /reports/latest in a frame of its own page.
        frame = wait(driver).until(EC.visibility_of_element_located(
            (By.CSS_SELECTOR, "iframe[title='Nightly reports'], iframe[src*='/reports']")))
        driver.switch_to.frame(frame)
        plot = "img[src$='seeing_sky.png']"
        img = wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, plot)))
        assert driver.execute_script("return location.pathname").rstrip("/") == f"/reports/{night}"
        assert night in driver.find_element(By.TAG_NAME, "h1").text
        loaded = wait(driver).until(lambda d: d.execute_script(
            "const i = arguments[0]; return i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.naturalHeight] : false;",
            img))
        assert loaded[0] > 100 and loaded[1] > 100, loaded
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", img)
        time.sleep(0.2)  # let the scroll paint before the picture is taken
        driver.switch_to.default_content()
        screenshot(driver, "04-report.png")


# A step can write any HTML into reports/<night>/: the reports plugin serves it sandboxed (CSP
# sandbox without allow-scripts), so no script in it runs, and it cannot read the login cookie.
PROBE = """<!doctype html><html><head><meta charset="utf-8"><title>probe report</title></head><body>
<h1 id="verdict">no script ran</h1>
<img id="plot" src="seeing_sky.png" alt="plot">
<img src="does-not-exist.png" onerror="document.getElementById('verdict').textContent = 'onerror ran: ' + document.cookie">
<script>
  document.getElementById('verdict').textContent = 'script ran: ' + document.cookie;
  document.title = 'script ran';
  new Image().src = 'script-ran-' + (document.cookie.indexOf('_token=') >= 0 ? 'read-the-cookie' : 'no-cookie') + '.png';
</script>
</body></html>
"""


def test_a_script_in_a_step_written_report_does_not_run(stack, signed_in, last_run):
    driver = signed_in
    night = (last_run.get("conf") or {}).get("night", SAMPLE_NIGHT)
    name = f"probe-{uuid.uuid4().hex[:6]}.html"
    stack.on_data("sh", "-c", 'printf %s "$1" > "/data/reports/$2/$3"', "sh", PROBE, night, name, user="1000:1000")
    with step(driver, "05-probe"):
        driver.switch_to.default_content()
        if "/auth/login" in driver.current_url or not path_of(driver.current_url).startswith("/dags"):
            driver.get(stack.web_url + f"/dags/{DAG}")
        wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[data-testid=nav-dags-link]")))
        # On the UI's own pages the login cookie is readable from JavaScript: what a report must not get.
        assert "_token=" in driver.execute_script("return document.cookie")
        driver.get(stack.web_url + f"/reports/{night}/{name}")
        verdict = wait(driver).until(EC.presence_of_element_located((By.ID, "verdict")))
        plot = driver.find_element(By.ID, "plot")
        # The page itself is shown, with its own (signed-in only) image ...
        wait(driver).until(lambda d: plot.get_attribute("naturalWidth") not in (None, "0"))
        assert int(plot.get_attribute("naturalWidth")) > 100
        # ... but neither its script nor its event handler ran.
        assert verdict.text == "no script ran", verdict.text
        assert driver.title == "probe report", driver.title
        # What the page fetched (read by the driver, which may; the page's own scripts may not):
        # its images, and not the one its script would have asked for.
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert any(u.endswith("/does-not-exist.png") for u in fetched), fetched
        assert not any("script-ran-" in u for u in fetched), fetched
        screenshot(driver, "05-probe.png")
