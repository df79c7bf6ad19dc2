"""What a reader of the built book sees: pages in a real headless Chromium, and the PDF through
poppler."""
import json
import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, book_notebooks
from PIL import Image
from playwright.sync_api import sync_playwright

from llmcourse import REPOSITORY

pytestmark = pytest.mark.book
CHAPTER_1 = "book/01_language_models.html"
# pydata-sphinx-theme logs this at console level "error" when no theme was stored yet: it then
# picks a theme itself
BENIGN_CONSOLE = ("Got invalid theme mode",)
# how many shapes each plotly figure of a page has drawn
MARKS = "els => els.map(e => e.querySelectorAll('.main-svg path, .main-svg rect').length)"


@pytest.fixture(scope="module")
def browser(chromium):
    with sync_playwright() as p:
        flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        yield browser
        browser.close()


def open_page(browser, path):
    """A built page opened from disk, with every JS error, console error and failed request
    recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    problems = []
    page.on("pageerror", lambda err: problems.append(f"JS error: {err}"))
    page.on("console", lambda msg: msg.type == "error" and not msg.text.startswith(BENIGN_CONSOLE)
            and problems.append(f"console error: {msg.text}"))
    page.on("requestfailed", lambda req: problems.append(f"failed request: {req.url}"))
    page.goto(path.as_uri())
    return page, problems


def wait_for_figures(page) -> int:
    """Wait until plotly has drawn every figure of the page; return how many there are."""
    count = page.locator(".plotly-graph-div").count()
    if count:
        drawn = f"document.querySelectorAll('.plotly-graph-div .main-svg').length >= {count}"
        page.wait_for_function(drawn, timeout=30_000)
    return count


def pick_from_menu(figure, label: str) -> None:
    """Open a figure's dropdown menu and click the entry labelled `label`, as a reader would."""
    figure.locator(".updatemenu-header-group").click()
    figure.locator(".updatemenu-dropdown-button").filter(has_text=label).click()


@pytest.fixture(scope="module")
def chapter(browser, built_book):
    page, problems = open_page(browser, built_book / "html" / CHAPTER_1)
    wait_for_figures(page)
    page.wait_for_timeout(1000)  # let late scripts (MathJax) finish and report
    yield page, problems
    page.close()


def test_page_loads_without_js_errors_or_failed_requests(chapter):
    _, problems = chapter
    assert problems == []


@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_every_chapter_draws_its_figures_without_errors(browser, built_book, notebook):
    page, problems = open_page(browser, built_book / "html" / "book" / f"{notebook.stem}.html")
    wait_for_figures(page)
    page.wait_for_timeout(500)
    marks = page.eval_on_selector_all(".plotly-graph-div", MARKS)
    fonts = unloadable_fonts(page)
    page.close()
    assert problems == [] and fonts == [] and all(m > 5 for m in marks)


def unloadable_fonts(page) -> list[str]:
    """A browser fetches a font only when some text needs it, which depends on the machine's fonts
    and on timing. Load every @font-face the page declares (theme, MathJax, the widget bundle's
    icons): a wrong URL fails every time."""
    return page.evaluate("""async () => {
        const faces = Array.from(document.fonts);
        const results = await Promise.allSettled(faces.map(f => f.load()));
        return faces.filter((f, i) => results[i].status === 'rejected')
            .map(f => `${f.family} ${f.weight}`);
    }""")


def test_every_declared_font_can_be_loaded(chapter):
    page, _ = chapter
    assert page.evaluate("document.fonts.size") > 10 and unloadable_fonts(page) == []


def test_every_plotly_figure_rendered_with_content(chapter):
    page, _ = chapter
    marks = page.eval_on_selector_all(".plotly-graph-div", MARKS)
    assert len(marks) >= 3 and min(marks) > 20


def test_plotly_menu_works_without_a_kernel(chapter):
    """Pick another entry in chapter 1's next-token menu: plotly redraws the bars from data in the
    page."""
    page, _ = chapter
    menu = page.locator(".updatemenu-header-group")
    figure = page.locator(".plotly-graph-div").filter(has=menu).first
    bars = ("el => Array.from(el.querySelectorAll('.bars .point path'))"
            ".map(p => p.getBBox().height).join(',')")
    before = figure.evaluate(bars)
    figure.locator(".updatemenu-header-group").click()
    figure.locator(".updatemenu-dropdown-button").nth(1).click()
    page.wait_for_timeout(500)
    after = figure.evaluate(bars)
    assert before and after and before != after


def test_math_is_typeset(chapter):
    page, _ = chapter
    assert page.locator("mjx-container").count() > 5


@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_every_notebook_page_has_a_colab_button(built_book, notebook):
    html = (built_book / "html" / "book" / f"{notebook.stem}.html").read_text()
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    colab = "https://colab.research.google.com/github/"
    assert f"{colab}{owner_repo}/blob/main/book/{notebook.name}" in html


def _pdf_text(pdf):
    command = ["pdftotext", "-layout", str(pdf), "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_pdf_has_every_figure_as_an_image(built_book, tmp_path):
    pdf = built_book / "latex" / "llmcourse.pdf"
    command = ["pdfimages", "-list", str(pdf)]
    listing = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    images = [line.split() for line in listing.splitlines()[2:] if line.split()[2] == "image"]
    pages = [built_book / "html" / "book" / f"{nb.stem}.html" for nb in book_notebooks()]
    figures = sum(page.read_text().count('class="plotly-graph-div"') for page in pages)
    # each figure of the HTML book is an image in the PDF
    assert figures >= 10 and len(images) == figures
    assert all(int(w) >= 1000 for w in (row[3] for row in images))  # rendered at print resolution
    # the first figure's page really shows it: render that page and check it is not blank
    page = images[0][0]
    render = ["pdftoppm", "-png", "-r", "50", "-f", page, "-l", page, str(pdf), str(tmp_path / "p")]
    subprocess.run(render, check=True)
    (png,) = tmp_path.glob("p*.png")
    histogram = Image.open(png).convert("L").histogram()  # 256 grey levels
    # more than 2 % of the page is ink, not white
    assert sum(histogram[:200]) / sum(histogram) > 0.02


def test_pdf_has_no_widget_reprs_and_has_the_chapter(built_book):
    text = _pdf_text(built_book / "latex" / "llmcourse.pdf")
    assert "What is a language model?" in text
    assert not re.search(r"\b[HV]Box\(", text)


def test_pdf_build_without_tex_says_what_to_install(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), "--pdf"],
                            capture_output=True, text=True, env={"PATH": str(tmp_path)})
    assert result.returncode != 0
    assert "apt-get install" in result.stderr and "texlive-xetex" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("exercises", sorted((ROOT / "exercises").glob("ch*.ipynb")),
                         ids=lambda p: p.name)
def test_each_chapter_links_its_exercises_in_colab(built_book, exercises):
    chapter = exercises.name[2:4]  # "ch01_..." -> "01"
    (page,) = (built_book / "html" / "book").glob(f"{chapter}_*.html")
    owner_repo = REPOSITORY.removeprefix("https://github.com/")
    colab = "https://colab.research.google.com/github/"
    assert f"{colab}{owner_repo}/blob/main/exercises/{exercises.name}" in page.read_text()


def test_attention_explorer_works_without_a_kernel(browser, built_book):
    """Chapter 4's explorer: the mask menu swaps mask and slider, and the layer/head slider restyles
    the weights."""
    page, problems = open_page(browser, built_book / "html" / "book" / "04_attention.html")
    drawn = "document.querySelectorAll('.plotly-graph-div .main-svg').length >= 2"
    page.wait_for_function(drawn, timeout=30_000)
    explorer = page.locator(".plotly-graph-div").filter(has_text="layer/head").first
    weights = "el => el._fullData[1].z.flat().map(v => Math.round(v * 1e4)).join(',')"
    mask = "el => el._fullData[0].z.flat().join('')"
    prefix = "el => el._fullLayout.sliders[0].currentvalue.prefix"
    before_weights, before_mask = explorer.evaluate(weights), explorer.evaluate(mask)
    rail = explorer.locator(".slider-group .slider-rail-touch-rect")
    rail.click(position={"x": 300, "y": 5})  # another head
    page.wait_for_timeout(500)
    assert explorer.evaluate(weights) != before_weights and explorer.evaluate(mask) == before_mask
    pick_from_menu(explorer, "sliding window")
    page.wait_for_timeout(500)
    assert explorer.evaluate(mask) != before_mask
    assert explorer.evaluate(prefix).startswith("sliding window")
    page.close()
    assert problems == []


def test_sampling_explorer_works_without_a_kernel(browser, built_book):
    """Chapter 5's explorer: the temperature slider and the filter menu combine, and the sample
    under the bars follows both."""
    page, problems = open_page(browser, built_book / "html" / "book" / "05_gpt_model.html")
    wait_for_figures(page)
    explorer = page.locator(".plotly-graph-div").filter(has_text="temperature:").first
    blue = """el => el._fullData
        .filter(t => t.type === 'bar' && t.visible === true && t.name.startsWith('after'))
        .map(t => [t.name, Array.from(t.y)])[0]"""
    words = ("el => el._fullData.filter(t => t.mode === 'text' && t.visible === true)"
             ".map(t => t.text[0])[0]")
    rail = explorer.locator(".slider-group .slider-rail-touch-rect")
    width = rail.bounding_box()["width"]
    rail.click(position={"x": 5, "y": 5})  # the left end: temperature 0, greedy
    page.wait_for_timeout(500)
    name, heights = explorer.evaluate(blue)
    assert name == "after: no filter" and sorted(heights)[-2:] == [0, 1]
    pick_from_menu(explorer, "top-k 5")
    rail.click(position={"x": width - 20, "y": 5})  # the right end: temperature 2
    page.wait_for_timeout(500)
    name, heights = explorer.evaluate(blue)
    assert name == "after: top-k 5" and sum(h > 0 for h in heights) == 5
    assert abs(sum(heights) - 1) < 1e-6
    assert explorer.evaluate(words).startswith("<b>5 of 2,048 tokens can be drawn")
    page.close()
    assert problems == []


def test_training_curves_compare_runs_without_a_kernel(browser, built_book):
    """Chapter 6's experiments figure: the menu shows one comparison at a time, with hover on every
    point."""
    page, problems = open_page(browser, built_book / "html" / "book" / "06_pretraining.html")
    wait_for_figures(page)
    figure = page.locator(".plotly-graph-div").filter(has_text="What each feature does").first
    shown = """el => el._fullData.filter(t => t.visible === true && t.name.endsWith(': train'))
        .map(t => t.name.replace(': train', ''))"""
    assert "lr 0.001" in figure.evaluate(shown)
    assert "lr 0.1, no warmup" not in figure.evaluate(shown)
    pick_from_menu(figure, "warmup")
    page.wait_for_timeout(500)
    assert sorted(figure.evaluate(shown)) == ["lr 0.1", "lr 0.1, no warmup"]
    # hover a point of the curve where a reader's mouse would be: its pixel position from the
    # figure's own axes
    x, y = figure.evaluate("""el => {
        const t = el._fullData.find(t => t.visible === true && t.name.endsWith(': train'));
        const i = Math.floor(t.x.length / 2);
        const xa = el._fullLayout['xaxis' + t.xaxis.slice(1)];
        const ya = el._fullLayout['yaxis' + t.yaxis.slice(1)];
        return [xa._offset + xa.c2p(t.x[i]), ya._offset + ya.c2p(t.y[i])]; }""")
    box = figure.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_timeout(500)
    assert "lr 0.1" in figure.locator(".hoverlayer").text_content()
    page.close()
    assert problems == []


# --- the pages as printed and shown: structure, fonts, no debris ----------------------------------

# a line of the setup cell, which the book runs but never shows
SETUP_IMPORT = "from llmcourse.notebook import setup"
PROGRESS_RATES = ("it/s]", "s/it]")  # how every tqdm bar ends its line, whatever its length


def notebook_title(path) -> str:
    first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
    return "".join(first["source"]).splitlines()[0].removeprefix("# ").strip()


def test_no_page_shows_the_setup_cell(built_book):
    pages = [built_book / "html" / "book" / f"{nb.stem}.html" for nb in book_notebooks()]
    assert all(SETUP_IMPORT not in page.read_text() for page in pages)
    assert SETUP_IMPORT not in _pdf_text(built_book / "latex" / "llmcourse.pdf")


def test_pdf_has_no_blank_pages(built_book, tmp_path):
    """Every page has something between its running header and its footer (the setup cell used to
    leave one alone on a page, followed by an empty one)."""
    pdf = built_book / "latex" / "llmcourse.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "p")], check=True)
    blank = []
    for png in sorted(tmp_path.glob("p-*.png")):
        page = Image.open(png).convert("L")
        width, height = page.size
        body = page.crop((0, int(height * 0.09), width, int(height * 0.91))).histogram()
        if sum(body[:200]) / sum(body) < 0.0001:  # under one dark pixel in ten thousand: empty
            blank.append(int(png.stem.split("-")[1]))
    assert blank == []


def test_pdf_numbers_chapters_as_the_text_does(built_book):
    """Chapter NN_* is chapter NN; parts print their captions alone ("Part I: ..."), the appendix
    is unnumbered."""
    # LaTeX writes a title's hyphens as \sphinxhyphen {} (a break point): read them back as hyphens
    toc = (built_book / "latex" / "llmcourse.toc").read_text().replace("\\sphinxhyphen {}", "-")
    entry = r"\\contentsline \{(part|chapter)\}\{(?:\\numberline \{([^}]*)\})?(.*?)\}\{\d+\}"
    entries = re.findall(entry, toc)
    chapters = {title: number for kind, number, title in entries if kind == "chapter"}
    parts = [(number, title) for kind, number, title in entries if kind == "part"]
    for notebook in book_notebooks():
        assert chapters.pop(notebook_title(notebook)) == str(int(notebook.name[:2]))
    assert chapters and all(number == "" for number in chapters.values())  # the appendix pages
    book_parts = yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
    captions = [part["caption"] for part in book_parts]
    assert parts == [("", caption) for caption in captions]


def test_html_numbers_chapters_as_the_text_does(built_book):
    numbered = '<h1><span class="section-number">'
    for notebook in book_notebooks():
        html = (built_book / "html" / "book" / f"{notebook.stem}.html").read_text()
        assert f"{numbered}{int(notebook.name[:2])}. </span>" in html
    pages = (built_book / "html" / "book").glob("*.html")
    appendix = [page for page in pages if not page.name[0].isdigit()]  # intro and appendix pages
    assert appendix and all(numbered not in page.read_text() for page in appendix)


def test_pdf_shows_cjk_and_emoji_in_their_fallback_fonts(built_book):
    """Chapter 3's bytes examples: 日 and 🚀 are typeset (pdftotext reads them back) in the fallback
    fonts."""
    pdf = built_book / "latex" / "llmcourse.pdf"
    text = _pdf_text(pdf)
    assert "日" in text and "🚀" in text
    command = ["pdffonts", str(pdf)]
    fonts = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "NotoSansCJK" in fonts and "Symbola" in fonts
    log = (built_book / "latex" / "llmcourse.log").read_text(errors="replace")
    assert re.findall(r"Missing character: There is no .*", log) == []  # no glyph anywhere left out


def test_no_progress_bar_debris(built_book):
    pages = sorted((built_book / "html").rglob("*.html"))
    with_bars = [p.name for p in pages if any(rate in p.read_text() for rate in PROGRESS_RATES)]
    assert with_bars == []
    pdf = built_book / "latex" / "llmcourse.pdf"
    assert not any(rate in _pdf_text(pdf) for rate in PROGRESS_RATES)


def test_pdf_says_what_each_figure_with_controls_shows(built_book):
    text = " ".join(_pdf_text(built_book / "latex" / "llmcourse.pdf").split())
    assert "Printed at one setting: permutations" in text  # chapter 2's trade-off slider
    assert "Printed at one setting: merges" in text  # chapter 3's merges slider
    # chapter 1's map, hover text in print
    assert "Where the course builds each box: Text: Part I, chapter 2" in text


# --- the HTML at the default width ----------------------------------------------------------------

@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_no_code_block_scrolls_sideways(browser, built_book, notebook):
    page, _ = open_page(browser, built_book / "html" / "book" / f"{notebook.stem}.html")
    first_lines = """els => els.filter(p => p.scrollWidth > p.clientWidth)
        .map(p => p.innerText.split('\\n').find(line => line.length > 0))"""
    wide = page.eval_on_selector_all(".bd-article pre", first_lines)
    page.close()
    assert wide == [], (f"{len(wide)} code blocks scroll sideways at 1280 px, "
                        f"starting with: {wide[:5]}")


def _overlaps(a: dict, b: dict) -> bool:
    return (a["left"] < b["right"] and b["left"] < a["right"]
            and a["top"] < b["bottom"] and b["top"] < a["bottom"])


BOXES = """el => {
    const box = e => {
        const r = e.getBoundingClientRect();
        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    };
    const all = sel => Array.from(el.querySelectorAll(sel))
        .filter(e => e.getBoundingClientRect().width > 0).map(box);
    return {title: all('.gtitle'), menu: all('.updatemenu-header-group'),
            toolbar: all('.modebar-group'), slider: all('.slider-group'),
            xlabels: all('.xtick text, .g-xtitle text')};
}"""


@pytest.mark.parametrize("notebook", book_notebooks(), ids=lambda p: p.name)
def test_no_figure_control_covers_another_part_of_the_figure(browser, built_book, notebook):
    """Menus clear of titles and of plotly's toolbar, sliders clear of the x axis' labels and
    title."""
    page, _ = open_page(browser, built_book / "html" / "book" / f"{notebook.stem}.html")
    figures = page.locator(".plotly-graph-div")
    clashes = []
    for i in range(wait_for_figures(page)):
        figure = figures.nth(i)
        figure.scroll_into_view_if_needed()
        # the toolbar shows while the pointer is over the figure
        figure.hover(position={"x": 5, "y": 5})
        page.wait_for_timeout(200)
        boxes = figure.evaluate(BOXES)
        pairs = [("menu", "title"), ("menu", "toolbar"), ("title", "toolbar"),
                 ("slider", "xlabels")]
        clashes += [f"figure {i}: {a} over {b}" for a, b in pairs
                    if any(_overlaps(x, y) for x in boxes[a] for y in boxes[b])]
    page.close()
    assert clashes == []


def test_the_attention_explorer_labels_every_token(browser, built_book):
    page, _ = open_page(browser, built_book / "html" / "book" / "04_attention.html")
    wait_for_figures(page)
    explorer = page.locator(".plotly-graph-div").filter(has_text="layer/head").first
    tokens = explorer.evaluate("el => el._fullData[1].z.length")
    shown = explorer.evaluate("""el => ['.xtick text', '.ytick text'].map(
        sel => Array.from(el.querySelectorAll(sel))
            .filter(t => t.textContent.length > 0).length)""")
    page.close()
    assert tokens > 5 and shown == [tokens, tokens]


def test_the_map_answers_a_hover_anywhere_on_a_box(chapter):
    """Chapter 1's map: the pointer near a box's corner, not only at its centre, brings up what the
    box does."""
    page, _ = chapter
    figure = page.locator(".plotly-graph-div").first
    figure.scroll_into_view_if_needed()
    box = figure.locator(".bars .point path").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 6, box["y"] + box["height"] - 4)
    page.wait_for_timeout(300)
    hovertexts = ("el => Array.from(el.querySelectorAll('.hoverlayer .hovertext'))"
                  ".map(t => t.textContent)")
    texts = figure.evaluate(hovertexts)
    page.mouse.move(0, 0)
    assert len(texts) == 1 and texts[0].startswith("Text")


def test_pieces_of_one_stream_are_joined_as_a_terminal_shows_them():
    """A cell that prints token by token (end="") gives one block, with nothing added between the
    pieces."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from course_book import join_streams
    from docutils import nodes

    def piece(text, kind):
        block = nodes.literal_block(text, text)
        block["classes"] += ["output", kind]
        return block

    output = nodes.container(nb_element="cell_code_output")
    output += [piece("KING.\nWhat", "stream"), piece(",", "stream"), piece(" sir\n", "stream"),
               piece("a warning\n", "stderr"), piece("more", "stream")]
    document = nodes.document(None, None)
    document += output
    join_streams(None, document)
    assert [(block.astext(), block["classes"][-1]) for block in output.children] == [
        ("KING.\nWhat, sir\n", "stream"), ("a warning\n", "stderr"), ("more", "stream")]
