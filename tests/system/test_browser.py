"""The explorer app in a real browser: Streamlit serves it on localhost, headless Chromium
(Debian's ``chromium`` package, driven by Playwright) opens it, moves a slider, and checks that
the page redrew, opens every page and measures a real HST cutout. Screenshots go to
``results/<profile>/app_browser.png``, ``app_models.png`` and ``app_your_image.png``.

Nothing is installed at run time: without ``/usr/bin/chromium`` (``apt-get install chromium``;
``.ci/run`` does it) the test is skipped with that reason.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from galaxies.runtime import profiles

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("GALAXIES_CHROMIUM", "/usr/bin/chromium")
#: What Chromium needs on a headless CI machine, and nothing that reaches the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)),
                       reason=f"Chromium is not installed at {CHROMIUM} "
                              "(apt-get install chromium); the browser test needs it"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    """The app served by `streamlit run` on a free local port (stopped afterwards)."""
    port = free_port()
    env = {**os.environ, "GALAXIES_PROFILE": "smoke"}
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "EDA/app/app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start:\n{log.read().decode(errors='replace')}")
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser_page():
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile_dir, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile_dir, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield context.new_page()
        finally:
            context.close()


def snr_text(page) -> str:
    return page.locator('[data-testid="stMetric"]').filter(has_text="SNR").first \
        .locator('[data-testid="stMetricValue"]').inner_text()


def wait_until_idle(page) -> None:
    """Wait for the script run to finish (Streamlit shows a status widget while it runs)."""
    page.wait_for_load_state("networkidle")
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=60_000)


def test_slider_redraws_the_simulator(app_url, browser_page):
    page = browser_page
    page.goto(app_url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Simulator").wait_for(timeout=60_000)
    page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=60_000)
    wait_until_idle(page)
    before = float(snr_text(page))
    noisy = page.locator('[data-testid="stImage"] img').nth(1)  # each image has its own scale,
    noisy_before = noisy.get_attribute("src")  # so only the noisy one changes with the flux

    flux = page.locator('[data-testid="stSidebar"]').get_by_role("slider").first
    assert flux.get_attribute("aria-valuetext") == "100000"
    for _ in range(20):  # +1000 e- a step
        flux.press("ArrowRight")
    value = float(flux.get_attribute("aria-valuetext"))
    assert value > 100000, "the slider did not move"
    # the SNR is proportional to the flux: wait until the page shows the new flux's SNR
    expected = before * value / 100000
    page.wait_for_function(
        """expected => {
            const card = [...document.querySelectorAll('[data-testid="stMetric"]')]
                .find(m => m.innerText.includes('SNR'));
            const shown = card && parseFloat(card.querySelector('[data-testid="stMetricValue"]').innerText);
            return Math.abs(shown - expected) < 0.15;
        }""", arg=expected, timeout=30_000)
    wait_until_idle(page)
    assert noisy.get_attribute("src") != noisy_before
    assert page.locator('[data-testid="stException"]').count() == 0

    results = profiles.get("smoke").results_dir
    results.mkdir(parents=True, exist_ok=True)
    shot = results / "app_browser.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_pages_open_without_errors(app_url, browser_page):
    """Every page opens; the Models page and a real HST cutout on "Your image" are saved as
    screenshots (``results/<profile>/app_models.png``, ``app_your_image.png``)."""
    page = browser_page
    results = profiles.get("smoke").results_dir
    results.mkdir(parents=True, exist_ok=True)
    for title in ("Bounds", "Data sets", "Models", "Your image"):
        page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
        page.get_by_role("heading", name=title).wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        assert page.locator('[data-testid="stException"]').count() == 0, title
        if title == "Models":
            wait_until_idle(page)
            page.screenshot(path=str(results / "app_models.png"), full_page=True)
    page.get_by_role("button", name="dwarf", exact=True).click()
    page.get_by_text("Example: a2744_f105w_dwarf.fits.gz").wait_for(timeout=120_000)
    page.get_by_text("approximate SNR").wait_for(timeout=120_000)  # measured and shown
    wait_until_idle(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlert"]').filter(has_text="cannot be used").count() == 0
    shot = results / "app_your_image.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
