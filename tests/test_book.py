"""What a reader of the built book sees: pages in a real headless Chromium, and the PDF through poppler."""
import re
import subprocess
import sys

import pytest
from PIL import Image
from playwright.sync_api import sync_playwright

from conftest import ROOT, book_notebooks
from llmcourse import REPOSITORY

pytestmark = pytest.mark.book
CHAPTER_1 = "book/01_language_models.html"
# pydata-sphinx-theme logs this at console level "error" when no theme was stored yet: it then picks a theme itself
BENIGN_CONSOLE = ("Got invalid theme mode",)


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def open_page(browser, path):
    """A built page opened from disk, with every JS error, console error and failed request recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    problems = []
    page.on("pageerror", lambda err: problems.append(f"JS error: {err}"))
    page.on("console", lambda msg: msg.type == "error" and not msg.text.startswith(BENIGN_CONSOLE)
            and problems.append(f"console error: {msg.text}"))
    page.on("requestfailed", lambda req: problems.append(f"failed request: {req.url}"))
    page.goto(path.as_uri())
    return page, problems


@pytest.fixture(scope="module")
def chapter(browser, built_book):
    page, problems = open_page(browser, built_book / "html" / CHAPTER_1)
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 5", timeout=30_000)
    page.wait_for_selector(".widget-hbox", timeout=30_000)
    page.wait_for_timeout(1000)  # let late scripts (MathJax, widgets) finish and report
    yield page, problems
    page.close()


def test_page_loads_without_js_errors_or_failed_requests(chapter):
    _, problems = chapter
    assert problems == []


@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_every_chapter_draws_its_figures_without_errors(browser, built_book, notebook):
    page, problems = open_page(browser, built_book / "html" / "book" / f"{notebook.stem}.html")
    expected = page.locator(".plotly-graph-div").count()
    if expected:
        page.wait_for_function(f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= {expected}",
                               timeout=30_000)
    page.wait_for_timeout(500)
    marks = page.eval_on_selector_all(
        ".plotly-graph-div", "els => els.map(e => e.querySelectorAll('.main-svg path, .main-svg rect').length)")
    fonts = unloadable_fonts(page)
    page.close()
    assert problems == [] and fonts == [] and all(m > 5 for m in marks)


def unloadable_fonts(page) -> list[str]:
    """A browser fetches a font only when some text needs it, which depends on the machine's fonts and on timing.
    Load every @font-face the page declares (theme, MathJax, the widget bundle's icons): a wrong URL fails every time."""
    return page.evaluate("""async () => {
        const faces = Array.from(document.fonts);
        const results = await Promise.allSettled(faces.map(f => f.load()));
        return faces.filter((f, i) => results[i].status === 'rejected').map(f => `${f.family} ${f.weight}`);
    }""")


def test_every_declared_font_can_be_loaded(chapter):
    page, _ = chapter
    assert page.evaluate("document.fonts.size") > 10 and unloadable_fonts(page) == []


def test_every_plotly_figure_rendered_with_content(chapter):
    page, _ = chapter
    marks = page.eval_on_selector_all(
        ".plotly-graph-div", "els => els.map(e => e.querySelectorAll('.main-svg path, .main-svg rect').length)")
    assert len(marks) == 5 and min(marks) > 20


def test_plotly_menu_works_without_a_kernel(chapter):
    """Pick another mode in the memory figure's menu: plotly redraws the bars from data in the page."""
    page, _ = chapter
    figure = page.locator(".plotly-graph-div").nth(3)
    heights = "el => Array.from(el.querySelectorAll('.bars .point path')).map(p => p.getBBox().height)"
    before = figure.evaluate(heights)
    figure.locator(".updatemenu-header-group").click()
    figure.locator(".updatemenu-dropdown-button").nth(3).click()  # bf16-mixed + activation checkpointing
    page.wait_for_timeout(500)
    after = figure.evaluate(heights)
    assert len(before) == len(after) > 0 and before != after


def test_widget_renders_from_saved_state(chapter):
    page, _ = chapter
    assert page.locator(".widget-hbox .widget-slider").count() >= 3
    assert "124.4 M" in page.locator(".widget-hbox .widget-html").inner_text()


def test_math_is_typeset(chapter):
    page, _ = chapter
    assert page.locator("mjx-container").count() > 5


@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_every_notebook_page_has_a_colab_button(built_book, notebook):
    html = (built_book / "html" / "book" / f"{notebook.stem}.html").read_text()
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/book/{notebook.name}" in html


def _pdf_text(pdf):
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_pdf_has_chapter_1_figures_as_images(built_book, tmp_path):
    pdf = built_book / "latex" / "llmcourse.pdf"
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    images = [line.split() for line in listing.splitlines()[2:] if line.split()[2] == "image"]
    assert len(images) >= 6  # chapter 1 alone has five figures and the calculator widget's snapshot
    assert all(int(w) >= 1000 for w in (row[3] for row in images))  # rendered at print resolution
    # the first figure's page really shows it: render that page and check it is not blank
    page = images[0][0]
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", page, "-l", page, str(pdf), str(tmp_path / "p")], check=True)
    (png,) = tmp_path.glob("p*.png")
    histogram = Image.open(png).convert("L").histogram()  # 256 grey levels
    assert sum(histogram[:200]) / sum(histogram) > 0.02  # more than 2 % of the page is ink, not white


def test_pdf_has_no_widget_reprs_and_has_the_chapter(built_book):
    text = _pdf_text(built_book / "latex" / "llmcourse.pdf")
    assert "What is a language model?" in text
    assert not re.search(r"\b[HV]Box\(", text)


def test_pdf_build_without_tex_says_what_to_install(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), "--pdf"],
                            capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert result.returncode != 0
    assert "apt-get install" in result.stderr and "texlive-xetex" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("exercises", sorted((ROOT / "exercises").glob("ch*.ipynb")), ids=lambda p: p.name)
def test_each_chapter_links_its_exercises_in_colab(built_book, exercises):
    chapter = exercises.name[2:4]  # "ch01_..." -> "01"
    (page,) = (built_book / "html" / "book").glob(f"{chapter}_*.html")
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    assert f"https://colab.research.google.com/github/{owner_repo}/blob/main/exercises/{exercises.name}" in page.read_text()


def test_attention_explorer_works_without_a_kernel(browser, built_book):
    """Chapter 4's explorer: the mask menu swaps mask and slider, and the layer/head slider restyles the weights."""
    page, problems = open_page(browser, built_book / "html" / "book" / "04_attention.html")
    page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= 2", timeout=30_000)
    explorer = page.locator(".plotly-graph-div").filter(has_text="layer/head").first
    weights = "el => el._fullData[1].z.flat().map(v => Math.round(v * 1e4)).join(',')"
    mask = "el => el._fullData[0].z.flat().join('')"
    prefix = "el => el._fullLayout.sliders[0].currentvalue.prefix"
    before_weights, before_mask = explorer.evaluate(weights), explorer.evaluate(mask)
    explorer.locator(".slider-group .slider-rail-touch-rect").click(position={"x": 300, "y": 5})  # another head
    page.wait_for_timeout(500)
    assert explorer.evaluate(weights) != before_weights and explorer.evaluate(mask) == before_mask
    explorer.locator(".updatemenu-header-group").click()
    explorer.locator(".updatemenu-dropdown-button").filter(has_text="sliding window").click()
    page.wait_for_timeout(500)
    assert explorer.evaluate(mask) != before_mask and explorer.evaluate(prefix).startswith("sliding window")
    page.close()
    assert problems == []
