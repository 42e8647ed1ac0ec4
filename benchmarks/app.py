"""How fast the explorer's Simulator page redraws when a slider moves.

Three measurements, each over a sequence of slider changes to values not seen before (so no
cache helps; a new Sérsic index also pays GalSim's Hankel table):

* **rendering**: `galaxies.interfaces.app_support.render` alone (the GalSim images and the SNR);
* **script rerun**: the whole page script under Streamlit's `AppTest` (rendering, colouring,
  every element), which is what the server does for each slider change;
* **browser** (``--browser``, needs Chromium): in headless Chromium against `streamlit run`, the
  time from the key press that moves the flux slider to the new SNR on screen.

    python benchmarks/app.py                   # rendering and script rerun, 40 changes
    python benchmarks/app.py --browser -n 20   # also the browser round trip
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "EDA" / "app" / "app.py"

#: (widget key, low, high, step) of the Simulator's sliders.
SLIDERS = [("flux", 3e4, 4e5, 1000.0), ("sersic_n", 0.5, 6.0, 0.05), ("sersic_r", 0.1, 0.6, 0.01),
           ("q", 0.2, 1.0, 0.01), ("beta", 0.0, 179.0, 1.0), ("psf_fwhm", 0.5, 1.0, 0.01),
           ("sigma", 200.0, 400.0, 5.0)]


def changes(count: int, seed: int) -> list[tuple[str, float]]:
    """``count`` (slider, value) changes cycling through the sliders, values on their steps."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        key, low, high, step = SLIDERS[k % len(SLIDERS)]
        value = low + step * rng.integers(0, round((high - low) / step) + 1)
        out.append((key, round(float(value), 6)))
    return out


def summary(name: str, seconds: list[float]) -> str:
    s = sorted(seconds)
    return (f"{name}: median {statistics.median(s) * 1000:.1f} ms, 90th percentile "
            f"{s[int(0.9 * (len(s) - 1))] * 1000:.1f} ms, max {s[-1] * 1000:.1f} ms "
            f"over {len(s)} slider changes")


def rendering(sequence) -> list[float]:
    from galaxies.interfaces import app_support as support

    params = support.GalaxyParameters.from_ellipticity(0.72, 57.0)
    q, beta = params.q, params.beta_deg
    support.render(params)
    times = []
    for key, value in sequence:
        if key == "q":
            q = value
        elif key == "beta":
            beta = value
        fields = {k: v for k, v in params.as_dict().items() if k not in ("g1", "g2")}
        if key not in ("q", "beta"):
            fields[key] = value
        params = support.GalaxyParameters.from_ellipticity(q, beta, **fields)
        start = time.perf_counter()
        support.render(params)
        times.append(time.perf_counter() - start)
    return times


def script_reruns(sequence) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, at.exception
    times = []
    for key, value in sequence:
        widget = at.slider(key=f"_w_{key}").set_value(value)
        start = time.perf_counter()
        widget.run()
        times.append(time.perf_counter() - start)
        assert not at.exception, at.exception
    return times


def browser_round_trips(count: int, chromium: str) -> list[float]:
    import socket
    import subprocess
    import tempfile
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    snr_js = """() => {
        const card = [...document.querySelectorAll('[data-testid="stMetric"]')]
            .find(m => m.innerText.includes('SNR'));
        return card ? card.querySelector('[data-testid="stMetricValue"]').innerText : null;
    }"""
    times = []
    try:
        for _ in range(180):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        with tempfile.TemporaryDirectory() as profile_dir, sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile_dir, executable_path=chromium, headless=True, args=args)
            page = context.new_page()
            page.goto(url)
            page.locator('[data-testid="stMetricValue"]').first.wait_for(timeout=120_000)
            page.wait_for_load_state("networkidle")
            flux = page.locator('[data-testid="stSidebar"]').get_by_role("slider").first
            for _ in range(count):
                before = page.evaluate(snr_js)
                start = time.perf_counter()
                flux.press("ArrowRight")  # +1000 e-: a new flux, so a new image and SNR
                page.wait_for_function(f"b => ({snr_js})() !== b", arg=before, timeout=60_000)
                times.append(time.perf_counter() - start)
                page.wait_for_load_state("networkidle")
            context.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--changes", type=int, default=40, help="slider changes to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--browser", action="store_true", help="also time the browser round trip")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    os.environ.setdefault("GALAXIES_PROFILE", "smoke")
    sequence = changes(args.changes, args.seed)
    print(f"Simulator page, {args.changes} slider changes to new values "
          f"(cycling {', '.join(k for k, *_ in SLIDERS)}), {os.cpu_count()} CPUs")
    print(summary("rendering (GalSim images + SNR)", rendering(sequence)))
    print(summary("script rerun (AppTest: whole page)", script_reruns(changes(args.changes,
                                                                              args.seed + 1))))
    if args.browser:
        if not Path(args.chromium).is_file():
            sys.exit(f"--browser needs Chromium at {args.chromium} (apt-get install chromium)")
        print(summary("browser (key press to new SNR on screen, headless Chromium)",
                      browser_round_trips(args.changes, args.chromium)))


if __name__ == "__main__":
    main()
