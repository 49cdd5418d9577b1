"""The app in Chromium, as a teacher would use it: dataset preview → a short training on a micro model
(the curve grows while it trains) → stop → merge → compare. Saves the README's screenshots.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install chromium``; scripts/setup.sh --tests
installs it). The app runs as a subprocess on a free port with its runs folder in a temp dir.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, SHORT_MCQ

from core.locale import text as t

CHROMIUM = Path("/usr/bin/chromium")
# the walk-through keeps its screenshots out of the tracked tree (the README's are made by scripts/screenshots.py
# from a trained demo run)
SHOTS = REPO / "test-artifacts" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing "
                                                      "(apt-get install chromium)")]


@pytest.fixture(scope="module")
def server(tmp_path_factory, smollm2_dir):
    """``python app.py`` on a free port; yields its URL and runs folder."""
    from bench.app_process import serve

    runs = tmp_path_factory.mktemp("browser-runs")
    t0 = time.time()
    proc, url = serve(runs, runs / "app.log", lang="vi")
    print(f"app answered after {time.time() - t0:.1f} s")
    yield url, runs
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def _shot(page, name: str, full_page: bool = True) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # let plots finish their transition
    page.screenshot(path=str(SHOTS / name), full_page=full_page)


def _tab(page, title: str) -> None:
    page.get_by_role("tab", name=title, exact=True).click()


def _text(key: str) -> str:
    """A label of the Vietnamese page."""
    return t(key, "vi")


def _plot_points(page) -> int:
    return page.evaluate("""() => { const p = document.querySelector('#tr-plot .js-plotly-plot');
                                    return p && p.data && p.data.length ? p.data[0].x.length : 0; }""")


def test_dataset_train_stop_merge_compare(page, server, micro_model):
    url, runs = server
    t0 = time.time()

    def phase(name: str) -> None:
        print(f"[{time.time() - t0:5.1f} s] {name}")
    page.goto(url)

    # --- the language switch leads to the English page and back
    assert page.locator(".ls-header h1").inner_text() == "LoRA Studio"
    assert page.locator("#lang-en").get_attribute("href") == "en/"

    # --- Dataset: the bundled MCQ sample, previewed with the embedded model's tokenizer
    page.wait_for_selector("#ds-info:has-text('341')")
    page.wait_for_selector("#ds-preview mark.ls-learned")
    page.wait_for_selector("#ds-hist .js-plotly-plot")
    assert "mcq_focus" in page.locator("#ds-schema").inner_text()  # the demo preset's template (the default)
    page.locator("#ds-next").click()
    page.wait_for_selector("#ds-page:has-text('Trang 2/35')")
    page.locator("#ds-prev").click()
    page.wait_for_selector("#ds-page:has-text('Trang 1/35')")
    _shot(page, "dataset.png")

    phase("dataset shown")
    # --- Hyperparameters: the demo preset, its checks and memory estimate
    _tab(page, "Siêu tham số")
    page.wait_for_selector("#hp-verdict")
    page.wait_for_selector("#hp-checks .ls-note")
    _shot(page, "hyperparameters.png")
    # a local folder is a valid base model: the micro model keeps the test short
    model = page.locator("#cfg-model-name_or_path input")
    model.fill(str(micro_model))
    model.press("Enter")
    page.locator("#cfg-advanced").get_by_text("Thiết lập nâng cao").first.click()
    for key, value in (("data-max_length", "256"), ("train-per_device_train_batch_size", "2"),
                       ("train-max_steps", "40"), ("train-eval_steps", "10"), ("train-save_steps", "100")):
        box = page.locator(f"#cfg-{key} input[type=number]")
        box.fill(value)
        box.press("Tab")
    page.wait_for_selector("#hp-cli:has-text('train.max_steps=40')")
    page.wait_for_selector("#hp-cli:has-text('train.eval_steps=10')")
    assert str(micro_model) in page.locator("#hp-cli").inner_text()

    phase("hyperparameters set")
    # --- Dataset: upload the short MCQ file; the preview now uses the micro model's tokenizer
    _tab(page, "Dữ liệu")
    # the model change re-renders the preview; let it settle so that it cannot land after the upload's
    settle = "() => { const el = document.querySelector('#ds-info'); return el && !el.innerText.includes('processing'); }"
    page.wait_for_function(settle, timeout=120_000)
    page.locator("#ds-upload input[type=file]").set_input_files(str(SHORT_MCQ))
    page.wait_for_selector("#ds-info:has-text('24 dòng')", timeout=120_000)
    page.wait_for_function(settle, timeout=120_000)
    assert "short_mcq.jsonl" in page.locator("#ds-info").inner_text()
    page.wait_for_selector("#ds-preview mark.ls-learned")
    assert (runs / "_uploads" / "short_mcq.jsonl").is_file()

    phase("upload previewed")
    # --- Training: start, watch the curve grow, stop
    _tab(page, "Huấn luyện")
    page.locator("#tr-start").click()
    page.wait_for_selector("#tr-progress[data-status='training']", timeout=90_000)
    assert page.locator("#tr-message .ls-error").count() == 0
    page.wait_for_function("() => document.querySelector('#tr-plot .js-plotly-plot')?.data?.[0]?.x?.length >= 1",
                           timeout=90_000)
    first = _plot_points(page)
    page.wait_for_function(f"() => document.querySelector('#tr-plot .js-plotly-plot').data[0].x.length > {first}",
                           timeout=90_000)
    assert _plot_points(page) > first

    # the status endpoint answers fast while a run trains, through gradio_client as a script would call it
    from gradio_client import Client

    client = Client(url, verbose=False)
    worst = 0.0
    for _ in range(5):
        t1 = time.perf_counter()
        status = client.predict(api_name="/training_status")
        worst = max(worst, time.perf_counter() - t1)
    # a run of this app is followed live while it trains; once it has ended it is read from its folder
    assert status["status"] in ("training", "stopping", "finished")
    assert status["live"] is (status["status"] != "finished")
    assert worst < 1.0, f"training_status took {worst:.2f} s"
    print(f"training_status worst of 5 calls: {worst * 1000:.0f} ms")

    # closing or reloading the page does not stop the run: the new page re-attaches to it
    page.reload()
    _tab(page, "Huấn luyện")
    page.wait_for_selector("#tr-progress[data-status='training'], #tr-progress[data-status='finished']")
    page.wait_for_function("() => document.querySelector('#tr-plot .js-plotly-plot')?.data?.[0]?.x?.length > "
                           f"{first + 2} || document.querySelector('#tr-progress')?.dataset.status === 'finished'",
                           timeout=90_000)
    _shot(page, "training.png")
    page.locator("#tr-stop").click()
    page.wait_for_selector("#tr-progress[data-status='stopped'], #tr-progress[data-status='finished']",
                           timeout=90_000)
    run_dirs = [d for d in runs.iterdir() if (d / "run.json").exists()]
    assert len(run_dirs) == 1 and (run_dirs[0] / "adapter" / "adapter_model.safetensors").exists()
    assert run_dirs[0].name in page.locator("#tr-progress").inner_text()
    phase("training stopped")

    # --- Merge & export, Compare, Classroom
    _tab(page, _text("merge.tab"))
    panel = page.locator("#tab-merge")
    panel.get_by_role("button", name=_text("runs.refresh_runs")).click()
    page.wait_for_timeout(800)
    panel.get_by_role("button", name=_text("merge.merge_button")).click()
    page.wait_for_selector("#tab-merge .ls-merge-badge, #tab-merge .ls-error", timeout=90_000)
    assert panel.locator(".ls-error").count() == 0, panel.inner_text()
    assert (run_dirs[0] / "merged" / "merge_report.json").exists()
    _shot(page, "merge.png")
    phase("merged")
    _tab(page, _text("compare.tab"))
    panel = page.locator("#tab-compare")
    panel.get_by_role("button", name=_text("runs.refresh_runs")).click()
    page.wait_for_timeout(1500)
    panel.get_by_role("button", name=_text("compare.generate")).click()
    page.wait_for_selector("#tab-compare .ls-pane", timeout=240_000)  # three models load, on a busy CI machine
    assert panel.locator(".ls-error").count() == 0, panel.inner_text()
    _shot(page, "compare.png", full_page=False)  # a random micro model writes pages of noise
    phase("compared")
    _tab(page, _text("classroom.tab"))
    panel = page.locator("#tab-classroom")
    panel.get_by_role("button", name=_text("runs.refresh_runs")).click()
    page.wait_for_timeout(1000)
    panel.get_by_role("button", name=_text("classroom.generate")).click()
    page.wait_for_selector("#tab-classroom .ls-cls-card[data-status]", timeout=180_000)
    # a random micro model writes no MCQ: the card says so in words, and it cannot be kept for the quiz
    card = page.locator("#tab-classroom .ls-quiz-item .ls-cls-card").first
    assert _text("mcq.badge.structure_bad") in card.inner_text()
    assert card.locator(".mcq-reasons li").count() >= 1
    keep = page.locator("#tab-classroom .ls-quiz-item").first.get_by_label(_text("classroom.keep"))
    assert not keep.is_checked()
    page.locator("#cls-export").click()
    page.wait_for_selector("#cls-export-status .ls-warn, #cls-export-status .ls-note", timeout=30_000)
    assert _text("classroom.nothing") in page.locator("#cls-export-status").inner_text()
    _shot(page, "classroom.png", full_page=False)
    phase("classroom shown")

    # --- Export for Ollama / llama.cpp, last (a compare after an export did not answer on the CI machine)
    from core.export import toolchain

    if toolchain.converter_path() is not None:  # scripts/setup.sh --tests installs it
        _tab(page, _text("merge.tab"))
        page.locator("#mg-export").get_by_text(_text("export.title")).first.click()
        page.locator("#mg-export").get_by_text(_text("export.quant_f16")).first.click()
        page.locator("#mg-export-button").click()
        page.wait_for_selector("#mg-export-result .ls-note, #mg-export-result .ls-warn, #mg-export-result .ls-error",
                               timeout=180_000)
        result = page.locator("#mg-export-result").inner_text()
        assert result.startswith("✓"), result  # "✓ Tệp f16 trả lời giống mô hình đã gộp (…)"
        files = page.locator("#mg-export-files").inner_text()
        assert "Modelfile" in files and "ollama create" in files
        assert list((run_dirs[0] / "export" / "f16").glob("*.gguf"))
        phase("exported")

    # --- the English page is the same app in English
    page.goto(url + "en/")
    page.wait_for_selector("#ds-info")
    assert page.get_by_role("tab", name="Hyperparameters", exact=True).is_visible()
    assert page.locator("#lang-vi").get_attribute("href") == "../"
    print(f"browser walk-through took {time.time() - t0:.0f} s")


def test_a_sweep_from_the_training_tab_overlays_its_runs_curves(page, server, micro_model):
    url, runs = server
    page.goto(url + "en/")
    page.wait_for_selector("#ds-info")
    _tab(page, "Training")
    page.locator("#tr-sweep").get_by_text(t("sweep.title", "en")).first.click()
    page.locator("#sw-grid textarea").fill("lora.r=4,8")
    # the micro model and a short run for every point of the grid, as extra settings
    page.locator("#sw-sets textarea").fill(f"model.name_or_path={micro_model}\ndata.source={SHORT_MCQ}\n"
                                           "data.max_length=256\n"
                                           "train.per_device_train_batch_size=2\ntrain.max_steps=3\n"
                                           "train.save_steps=100")
    page.locator("#sw-name textarea, #sw-name input").first.fill("browser")
    page.locator("#sw-start").click()
    page.wait_for_selector("#sw-message:has-text('2 of 2 runs finished'), #sw-message .ls-error", timeout=180_000)
    assert page.locator("#sw-message .ls-error").count() == 0, page.locator("#sw-message").inner_text()
    page.wait_for_function("() => document.querySelector('#sw-overlay .js-plotly-plot')?.data?.length >= 2",
                           timeout=60_000)
    names = page.evaluate("() => document.querySelector('#sw-overlay .js-plotly-plot').data.map(d => d.name)")
    assert any(n.startswith("browser-00-r4") for n in names) and any(n.startswith("browser-01-r8") for n in names)
    table = page.locator("#sw-table").inner_text()
    assert table.count("★") == 1 and "Finished" in table and "within 1–4" in table
    assert (runs / "sweeps" / "browser" / "sweep.json").exists()
    _shot(page, "sweep.png", full_page=False)
