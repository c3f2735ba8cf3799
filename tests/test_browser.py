"""The real thing in a real browser: JupyterLab on localhost, headless Debian Chromium driven by
Playwright, the Inception V3 tutorial run top to bottom (short parameters). The partition view
(SVG with green partitions) and the comparison plot must appear; screenshots go to out/browser/."""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
papermill = pytest.importorskip("papermill", reason="notebook extras not installed")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = pathlib.Path(__file__).parent.parent
SCREENSHOTS = ROOT / "out" / "browser"
TOKEN = "itexlab-browser-test"
GREEN = "#b8e186"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a copy of the Inception tutorial with CI-sized parameters."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed (the README's set-up command installs it)")
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    book = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / "inception_v3.ipynb")),
                                 {"epochs": 1, "train_limit": 128, "repeats": 2, "calibration_batches": 2,
                                  "legacy": False, "speed_size": 75})
    write_ipynb(book, str(tmp_path / "inception_v3.ipynb"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
         # offline: no extension manager querying PyPI, no news or update checks
         "--LabApp.news_url=", "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start")
            time.sleep(1)
    yield url
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def test_inception_tutorial_in_jupyterlab(lab):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{lab}/lab/tree/inception_v3.ipynb?token={TOKEN}")
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_timeout(3000)  # let the kernel start; cells run queue behind it anyway
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        # The partition view: an SVG whose partition boxes are filled green.
        partitions = page.locator(f".jp-OutputArea-output svg g.node path[fill='{GREEN}'], "
                                  f".jp-OutputArea-output svg g.node polygon[fill='{GREEN}']")
        partitions.first.wait_for(timeout=900_000)
        assert partitions.count() >= 50
        partitions.first.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "inception_partition_view.png"))
        # The comparison plot (matplotlib PNG) is among the last outputs.
        plots = page.locator(".jp-OutputArea-output img[src^='data:image/png']")
        page.wait_for_function("document.querySelectorAll(\".jp-OutputArea-output img[src^='data:image/png']\")"
                               ".length >= 2", timeout=900_000)
        plots.last.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "inception_comparison.png"))
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] >> text=Traceback")
        assert errors.count() == 0
        browser.close()
