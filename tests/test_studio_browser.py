"""ganforge studio in a real browser (Playwright driving Debian's chromium).

Skipped when /usr/bin/chromium or playwright is missing (scripts/setup.sh installs both).
Set GANFORGE_STUDIO_SCREENSHOTS=docs to refresh the README's screenshots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")

from studio_helpers import real_runs  # noqa: E402

from ganforge.studio import serve_in_thread  # noqa: E402
from ganforge.studio.demo import append_metrics, write_fake_run  # noqa: E402

TIMEOUT_MS = 15000


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-browser") / "runs"
    root.mkdir()
    write_fake_run(root, "00001-live", steps=200, log_every=10, samples=4, result=None)
    write_fake_run(root, "00002-hinge", steps=200, log_every=10, preset="hinge", seed=1)
    runs = real_runs(root)
    st = serve_in_thread(root, token="browser-token")
    yield st, root, runs
    st.stop()


@pytest.fixture(scope="module")
def page(studio):
    st, _, _ = studio
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1100, "height": 760})
        pg.set_default_timeout(TIMEOUT_MS)
        pg.errors = []
        pg.on("console", lambda m: pg.errors.append(m.text) if m.type == "error" else None)
        pg.on("pageerror", lambda e: pg.errors.append(str(e)))
        pg.goto(st.url + "/#token=browser-token")
        yield pg
        browser.close()


def screenshot(pg, name: str, tmp_path: Path, full_page: bool = False) -> Path:
    """A small PNG (256-colour palette); into docs/ when GANFORGE_STUDIO_SCREENSHOTS says so."""
    from PIL import Image
    out_dir = Path(os.environ.get("GANFORGE_STUDIO_SCREENSHOTS", "") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    pg.screenshot(path=str(path), full_page=full_page)
    Image.open(path).convert("RGB").quantize(colors=128).save(path, optimize=True)
    return path


def test_page_loads_without_console_errors(page, tmp_path):
    page.wait_for_selector("#runs-table tbody tr[data-id='00001-live'] .badge.running")
    page.wait_for_selector("#runs-table tbody tr[data-id='00002-hinge'] .badge.finished")
    assert page.locator("#runs-table tbody tr").count() == 4
    page.wait_for_function("() => [...document.querySelectorAll('#runs-table img')].filter(i => !i.hidden)"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    time.sleep(0.3)
    assert page.errors == []
    screenshot(page, "studio_runs.png", tmp_path)


def test_curve_gains_points_while_the_run_writes(page, studio, tmp_path):
    _, root, _ = studio
    page.click("a.run-link >> text=00001-live")
    chart = page.locator(".chart[data-group='losses']")
    chart.wait_for()
    page.wait_for_function("() => document.querySelector(\".chart[data-group='losses']\").dataset.points === '20'")
    append_metrics(root / "00001-live", range(210, 260, 10))
    page.wait_for_function("() => document.querySelector(\".chart[data-group='losses']\").dataset.points === '25'")
    assert chart.get_attribute("data-last-step") == "250"
    # the chart itself holds the new points (uPlot's data, not only our attribute)
    n = page.evaluate("() => window.studio.S.charts['losses'].plot.data[0].length")
    assert n == 25
    assert page.errors == []
    screenshot(page, "studio_run.png", tmp_path)


def test_curve_follows_a_real_training_run(page, studio):
    """ganforge.train in a background thread (a tiny toy GAN with a 7.2 s budget: long enough for the
    page to see the chart grow twice on a loaded machine) while the page
    watches: its chart gains points as the run's own MetricsLog appends them."""
    import threading

    from ganforge.config import resolve
    from ganforge.session import train
    _, root, _ = studio
    cfg = resolve("vanilla", None, ["model.arch=mlp", "data.name=ring8", "model.z_dim=4", "model.g.hidden=16",
                                    "model.d.hidden=16", "train.batch_size=32", "train.steps=1000000",
                                    "train.max_minutes=0.12", "train.log_every=25", "train.sample_every=0",
                                    "train.ckpt_every=0", "train.progress=false", "train.threads=1"])
    run = root / "00009-realtime"
    t = threading.Thread(target=train, args=(cfg,), kwargs={"run_dir": run, "quiet": True})
    t.start()
    try:
        page.click("nav button[data-view=runs]")
        page.click("a.run-link >> text=00009-realtime")
        page.wait_for_function("() => +(document.querySelector(\".chart[data-group='losses']\")?.dataset.points || 0) >= 2")
        seen = int(page.get_attribute(".chart[data-group='losses']", "data-points"))
        page.wait_for_function(f"() => +document.querySelector(\".chart[data-group='losses']\").dataset.points > {seen}")
    finally:
        t.join(60)
    page.wait_for_selector("#run-status.finished", timeout=20000)  # result.json: time budget
    rows = (run / "metrics.jsonl").read_text().count("\n")
    page.wait_for_function(f"() => document.querySelector(\".chart[data-group='losses']\").dataset.points === '{rows}'")


def test_smoothing_and_log_scale(page):
    # debiased exponential moving average, by hand for w = 0.5: 1, (0.25 + 1) / 0.75, gap, (0.625 + 2) / 0.875
    got = page.evaluate("() => window.studio.smooth([1, 2, null, 4], 0.5)")
    assert got[0] == pytest.approx(1) and got[1] == pytest.approx(5 / 3) and got[2] is None
    assert got[3] == pytest.approx(3)
    assert page.evaluate("() => window.studio.plotValues([1, -1, 0, 2], 0, true)") == [1, None, None, 2]
    page.check("#logscale")
    page.wait_for_function("() => window.studio.S.charts['losses'].plot.scales.y.distr === 3")
    page.uncheck("#logscale")
    page.wait_for_function("() => window.studio.S.charts['losses'].plot.scales.y.distr === 1")
    raw = page.evaluate("() => window.studio.S.m.series['loss/G']")
    page.fill("#smooth", "0")
    shown = page.evaluate("() => window.studio.S.charts['losses'].plot.data")
    keys = page.evaluate("() => window.studio.S.charts['losses'].keys")
    assert shown[1 + keys.index("loss/G")] == pytest.approx(raw)  # smoothing 0 shows the logged values
    page.fill("#smooth", "0.6")


def test_timeline_slider_changes_the_grid(page):
    page.click("nav button[data-view=runs]")
    page.click("a.run-link >> text=00001-live")
    page.wait_for_selector("#timeline-img[src$='step-0000200.png']")
    page.fill("#timeline", "0")  # range inputs take fill() and fire input
    page.wait_for_selector("#timeline-img[src$='step-0000050.png']")
    assert "step 50 (1 of 4)" in page.inner_text("#timeline-label")
    page.wait_for_function("() => document.querySelector('#timeline-img').naturalWidth > 0")


def test_sample_with_a_seed_twice_gives_the_same_image(page, studio, tmp_path):
    _, _, runs = studio
    page.click("nav button[data-view=playground]")
    page.select_option("#pg-run", runs["cond"].name)
    page.wait_for_selector("#pg-sample-panel:not([hidden])")
    assert page.locator("#pg-class option").count() == 11  # "random" + 10 classes

    def sample(seed: str) -> str:
        page.evaluate("() => document.querySelector('#pg-sample').removeAttribute('src')")
        page.fill("#pg-seed", seed)
        page.click("#pg-sample-btn")
        page.wait_for_selector("#pg-sample[src^='data:image/png']")
        return page.get_attribute("#pg-sample", "src")

    first = sample("7")
    other = sample("8")
    again = sample("7")
    assert first == again and first != other
    page.click("#pg-interp-btn")
    page.wait_for_selector("#pg-interp[src^='data:image/png']")
    assert page.inner_text("#pg-error") == ""
    screenshot(page, "studio_playground.png", tmp_path)


def test_uploading_a_non_image_shows_a_clear_error(page, studio):
    _, _, runs = studio
    page.select_option("#pg-run", runs["pix2pix"].name)
    page.wait_for_selector("#pg-translate-panel:not([hidden])")
    page.set_input_files("#pg-file", files=[{"name": "notes.png", "mimeType": "image/png",
                                             "buffer": b"these are words, not pixels"}])
    page.click("#pg-translate-btn")
    page.wait_for_function("() => document.querySelector('#pg-error').textContent.length > 0")
    assert page.inner_text("#pg-error").startswith("cannot read the upload")
    assert page.get_attribute("#pg-translate", "src") is None


def test_compare_overlays_runs_and_shows_grids(page, studio):
    page.click("nav button[data-view=runs]")
    for rid in ("00001-live", "00002-hinge"):
        page.check(f"#runs-table tr[data-id='{rid}'] input[type=checkbox]")
    page.click("nav button[data-view=compare]")
    page.wait_for_selector("#cmp-chart[data-series='2']")
    page.wait_for_selector("#cmp-grids figure img")
    assert page.locator("#cmp-grids figure").count() == 2


def test_train_tab_reports_bad_overrides_and_a_missing_token(page):
    page.click("nav button[data-view=train]")
    page.select_option("#tr-preset", "vanilla")
    page.fill("#tr-overrides", "train.steps=5\noptim.lr_dd=1e-4")
    page.click("#tr-start")
    page.wait_for_selector("#tr-msg.bad")
    assert "unknown config key 'optim.lr_dd'" in page.inner_text("#tr-msg")
    page.fill("#tr-token", "")
    page.click("#tr-start")
    page.wait_for_function("() => document.querySelector('#tr-msg').textContent.includes('token')")
    page.fill("#tr-token", "browser-token")


def test_traversal_url_is_404(page, studio):
    st, _, _ = studio
    for path in ("/files/..%2f..%2f..%2fetc%2fpasswd", "/files/%2e%2e/%2e%2e/%2e%2e/etc/passwd"):
        r = page.goto(st.url + path)
        assert r.status == 404, path
        assert "root:" not in page.content()
