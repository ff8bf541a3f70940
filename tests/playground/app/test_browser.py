"""The page in a real browser: pick a preset, Play, watch the plots change, Pause, Reset.

Needs Chromium at /usr/bin/chromium (CI installs it). With PLAYGROUND_SCREENSHOTS=1
it also writes assets/flow.png, assets/gan.png, assets/vae.png and
assets/diffusion.png (1400 x 900) for the README.
"""

import os
import re
import time
from pathlib import Path

import pytest
import torch

from tests.fakes import free_port

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ASSETS = Path(__file__).resolve().parents[3] / "assets"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no Chromium at {CHROMIUM} (CI installs it)")


@pytest.fixture(scope="module")
def served():
    """(the page's address, the server's RunManager)."""
    from playground.app import CSS, build_app
    from playground.runs import RunManager

    threads = torch.get_num_threads()
    manager = RunManager(2)
    demo = build_app(manager)  # one torch thread per operation, as the app runs
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, css=CSS)
    yield f"http://127.0.0.1:{port}/", manager
    demo.close()
    manager.shutdown()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def url(served):
    return served[0]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url)
    wait_step(page, lambda s: s == 0, timeout=60)  # the first run is built and shown
    yield page
    page.close()


def status(page) -> str:
    return page.locator("#status").inner_text()


def step_of(page) -> int | None:
    m = re.search(r"step ([\d,]+)", status(page))
    return int(m.group(1).replace(",", "")) if m else None


def wait_step(page, cond, timeout=30.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = step_of(page)
        if s is not None and cond(s):
            return s
        page.wait_for_timeout(200)
    raise AssertionError(f"step condition not met within {timeout} s; status: {status(page)!r}")


def assert_step_settles(page, quiet=1.5, timeout=15.0, states=("paused",)) -> int:
    """The shown step stops moving (redraws already on their way may still land first)."""
    end = time.monotonic() + timeout
    last, since = step_of(page), time.monotonic()
    while time.monotonic() < end:
        page.wait_for_timeout(250)
        now = step_of(page)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet and any(state in status(page) for state in states):
            return now
    raise AssertionError(f"the step kept moving after Pause; status: {status(page)!r}")


def choose_preset(page, title: str) -> None:
    page.get_by_label("Presets").click()
    page.get_by_role("option", name=title).click()
    page.locator("#watch").get_by_text(title).wait_for(timeout=30_000)


def first_plot_svg(page) -> str:
    return page.locator(".js-plotly-plot .main-svg").first.inner_html()


def test_preset_play_pause_reset(page):
    choose_preset(page, "A flow unfolds the two moons")
    assert "RealNVP pulls the two moons" in page.locator("#watch").inner_text()
    wait_step(page, lambda s: s == 0)
    assert "model=realnvp" in page.url and "data=two_moons" in page.url  # the link follows the settings
    before = first_plot_svg(page)

    page.locator("#play").click()
    s1 = wait_step(page, lambda s: s > 0)
    wait_step(page, lambda s: s > s1)  # still climbing
    end = time.monotonic() + 20
    while first_plot_svg(page) == before and time.monotonic() < end:
        page.wait_for_timeout(300)
    assert first_plot_svg(page) != before  # the panels redraw as it trains

    page.locator("#pause").click()
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('paused')", timeout=10_000)
    assert_step_settles(page)

    page.locator("#reset").click()
    wait_step(page, lambda s: s == 0, timeout=10)
    assert "ready" in status(page)


def pick(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def shown_value(page, label: str) -> str:
    return page.get_by_label(label, exact=True).input_value()


def test_fast_changes_leave_the_page_the_run_and_the_link_in_agreement(page, served):
    """Family, then Dataset 0.3 s later: both are kept, on the page, in the run and in the link."""
    _, manager = served
    pick(page, "Family", "vae")
    page.wait_for_timeout(300)
    pick(page, "Dataset", "eight_gaussians")
    page.wait_for_function("() => location.search.includes('model=vae') && location.search.includes('data=eight_gaussians')",
                           timeout=60_000)
    page.wait_for_timeout(1500)  # anything still on its way lands
    runs = [s.current for s in list(manager._sessions.values()) if not s.closed and s.current is not None]
    assert [(r.model_name, r.dataset_name) for r in runs] == [("vae", "eight_gaussians")]
    assert (shown_value(page, "Family"), shown_value(page, "Model"), shown_value(page, "Dataset")) == \
        ("vae", "vae", "eight_gaussians")
    assert "model=vae" in page.url and "data=eight_gaussians" in page.url
    page.locator("#play").click()  # the first Play trains, and says so
    wait_step(page, lambda s: s > 0, timeout=60)
    assert runs[0].step > 0 and runs[0] is [s.current for s in manager._sessions.values() if not s.closed][0]


BUSY_PAGE = """() => {  // 300 ms long tasks with 100 ms between them, for 6 s: a browser that is slow to draw
  const end = performance.now() + 6000;
  const spin = () => {
    const t = performance.now();
    while (performance.now() - t < 300) {}
    if (performance.now() < end) setTimeout(spin, 100);
  };
  spin();
}"""


def test_a_busy_browser_says_so_and_is_sent_fewer_pictures(page, served):
    """The page measures its own long tasks and sends them with its ticks; the server then spaces
    that tab's pictures beyond the redraw period it asked for."""
    _, manager = served
    page.locator("#play").click()
    wait_step(page, lambda s: s > 0, timeout=60)
    session = next(s for s in list(manager._sessions.values()) if not s.closed and s.current is not None)
    page.evaluate(BUSY_PAGE)
    page.wait_for_timeout(6500)
    assert session.browser.cost is not None and session.browser.cost > 0.1
    assert session.browser.interval() > session.redraw_period  # its pictures now come less often
    page.locator("#pause").click()


def test_a_page_that_only_waits_sends_gradio_no_events_but_still_reports_in(page, served):
    """Every event of Gradio's costs the browser the same handling whatever it carries (a fifth of
    a core at one a second, BENCHMARKS.md). While its run waits the page's timer asks the server
    over plain HTTP whether a redraw is due (handlers.pulse): a page with nothing new sends the
    queue nothing and the server still hears from it. While the run trains the timer redraws at
    every tick, asking nothing first, and once it is paused and drawn the page is quiet again."""
    joins, pulses = [], []

    def seen(request):
        if "/queue/join" in request.url:
            joins.append(request.url)
        elif "/run/pulse" in request.url:
            pulses.append(request.url)

    def quiet(window=4.5, timeout=40.0) -> int:
        """Wait for `window` seconds in which the page sends the queue nothing (a redraw due now,
        the first picture or the paused run's last, may still come first); its pulses then."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            joins.clear(), pulses.clear()
            page.wait_for_timeout(window * 1000)
            if not joins:
                return len(pulses)
        raise AssertionError(f"the page kept sending events while it waited: {status(page)!r}")

    page.on("request", seen)
    assert quiet() >= 2  # it still reports in, at its idle period
    page.locator("#play").click()
    start = wait_step(page, lambda s: s > 0, timeout=60)
    wait_step(page, lambda s: s > start, timeout=30)  # the status line follows the run: redraws came
    joins.clear(), pulses.clear()
    end = time.monotonic() + 15
    while len(joins) < 3 and time.monotonic() < end:  # redraws come as fast as the server answers them
        page.wait_for_timeout(250)
    assert len(joins) >= 3 and len(pulses) <= 1  # training: redraws, no question asked first
    page.locator("#pause").click()
    assert_step_settles(page)
    assert quiet() >= 2


SHOTS = [("flow.png", "A flow unfolds the two moons", 30), ("gan.png", "WGAN-GP keeps every mode", 45),
         ("vae.png", "The VAE's latent grid", 40), ("diffusion.png", "Diffusion trajectories", 60)]


@pytest.mark.skipif(os.environ.get("PLAYGROUND_SCREENSHOTS") != "1", reason="set PLAYGROUND_SCREENSHOTS=1 to write assets/*.png")
@pytest.mark.parametrize("name,title,seconds", SHOTS)
def test_screenshots(page, name, title, seconds):
    choose_preset(page, title)
    page.locator("#play").click()
    wait_step(page, lambda s: s > 0)
    page.wait_for_timeout(seconds * 1000)
    page.locator("#pause").click()
    assert_step_settles(page, states=("paused", "done"))  # a short preset may finish first
    page.wait_for_timeout(2000)  # the last picture and metrics land
    ASSETS.mkdir(exist_ok=True)
    page.screenshot(path=str(ASSETS / name))
