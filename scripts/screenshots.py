"""The README's screenshots, from a real trained run: ``python scripts/screenshots.py RUN_DIR [--out DIR]``.

RUN_DIR is a finished run of the demo preset (``python -m core train presets/demo.yaml``). The app is started on
a runs folder that holds only that run (a copy made of hard links, beside it), and Chromium visits each tab as a
teacher would: the dataset, the demo preset's form, the run's curves, the merge and its report (merging the copy
when the run has no merge yet: ``python -m core merge RUN_DIR`` first keeps it), Compare on a test paragraph, and
the Classroom's quiz card with its badges. The PNGs go to
``assets/screenshots/`` (or ``--out``). The test suite never runs this: it would rewrite tracked files.

Needs Debian's chromium (``bash scripts/setup.sh --tests``) and playwright (in requirements.txt).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.app_process import serve  # noqa: E402
from core.locale import text as t  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/screenshots.py")
    p.add_argument("run", type=Path, help="a finished run of the demo preset")
    p.add_argument("--out", type=Path, default=REPO / "assets" / "screenshots")
    args = p.parse_args(argv)
    run = args.run.resolve()
    from core.run import RunFolder

    folder = RunFolder(run)
    if not folder.is_run() or not folder.has_adapter():
        raise SystemExit(f"error: {run} is not a finished run folder (no run.json / adapter/)")
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    # beside the run, so that its files can be hard links (a symbolic link would be refused: the app never follows
    # a run name out of its runs folder)
    with tempfile.TemporaryDirectory(dir=run.parent, prefix=".screenshots-") as tmp:
        runs = Path(tmp) / "runs"
        runs.mkdir()
        shutil.copytree(run, runs / run.name, copy_function=_link_or_copy)
        run = runs / run.name
        proc, url = serve(runs, Path(tmp) / "app.log", lang="vi")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(300_000)

                def shot(name: str, full_page: bool = True) -> None:
                    page.wait_for_timeout(800)
                    page.screenshot(path=str(args.out / name), full_page=full_page)
                    print(f"wrote {args.out / name}")

                def tab(key: str):
                    page.get_by_role("tab", name=t(key, "vi"), exact=True).click()
                    return page.locator(f"#tab-{key.split('.')[0]}")

                page.goto(url)
                page.wait_for_selector("#ds-preview mark.ls-learned")
                page.wait_for_selector("#ds-hist .js-plotly-plot")
                shot("dataset.png")

                tab("params.tab")
                page.wait_for_selector("#hp-verdict")
                shot("hyperparameters.png")

                tab("training.tab")
                page.locator("#tr-past").get_by_text(t("training.past", "vi")).first.click()
                page.locator("#tr-runs input").first.click()
                page.get_by_role("option").first.click()
                page.wait_for_selector("#tr-overlay .js-plotly-plot")
                shot("training.png")

                panel = tab("merge.tab")
                if not (run / "merged" / "merge_report.json").exists():
                    panel.get_by_role("button", name=t("merge.merge_button", "vi")).click()
                page.wait_for_selector("#tab-merge .ls-merge-badge")
                shot("merge.png")

                panel = tab("compare.tab")
                panel.get_by_role("button", name=t("compare.generate", "vi")).click()
                page.wait_for_selector("#tab-compare .ls-pane")
                page.locator("#tab-compare .ls-pane").first.scroll_into_view_if_needed()  # the three answers
                shot("compare.png", full_page=False)

                panel = tab("classroom.tab")
                panel.get_by_role("button", name=t("classroom.generate", "vi")).click()
                page.wait_for_selector("#tab-classroom .ls-quiz-item .ls-cls-card[data-status]")
                page.locator("#tab-classroom .ls-quiz-item").first.scroll_into_view_if_needed()
                shot("classroom.png")
                browser.close()
        finally:
            proc.terminate()
            proc.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
