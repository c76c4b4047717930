# SPDX-License-Identifier: Apache-2.0
"""The flame graph in a real browser: headless Chromium through selenium.

GIVEN an SVG (or an HTML page with two inline graphs) made from a profile with hostile
frame names, WHEN it is opened, hovered, clicked and searched, THEN no injected script runs,
the names read back exactly, and zoom, reset and search behave, each graph on its own.

Chromium and chromedriver are required: a missing browser fails these tests (CI installs
them), it never skips them.
"""
import os
import shutil

import pytest

from flamegraph import FlameGraphOptions, embed_html, render_svg
from profkit.model import Frame, Profile

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("PROFKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PROFKIT_CHROMEDRIVER", "/usr/bin/chromedriver")

HOSTILE = [
    "<script>window.pwned=1</script>",
    '<img src=x onerror="window.pwned=2">',
    "]]><script>window.pwned=3</script>",
    '"><svg onload="window.pwned=4">',
    "</title><script>window.pwned=5</script>",
    "&lt;b&gt; & 'quotes'",
]


def profile():
    p = Profile()
    p.add(["main", "work", "json_dump"], 50)
    p.add(["main", "work", "json_dump", "json_dump"], 20)
    p.add(["main", "idle"], 100)
    for i, name in enumerate(HOSTILE):
        p.add([Frame("main"), Frame(name), Frame("leaf")], 5 + i)
    return p


TOTAL = profile().total


def svg_text(**opts):
    import io

    out = io.StringIO()
    render_svg(profile(), FlameGraphOptions(**opts), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(f"browser tests need Chromium and chromedriver; missing: {', '.join(missing)} "
                    "(install with: apt-get install chromium chromium-driver; or set PROFKIT_CHROMIUM / "
                    "PROFKIT_CHROMEDRIVER)", pytrace=False)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("browser tests need selenium: pip install selenium", pytrace=False)
    profile_dir = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                f"--user-data-dir={profile_dir}", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    drv.set_script_timeout(10)
    try:
        yield drv
    finally:
        drv.quit()
        shutil.rmtree(profile_dir, ignore_errors=True)


# -- helpers ------------------------------------------------------------------------------
def no_alert(drv):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        text = drv.switch_to.alert.text
    except NoAlertPresentException:
        return True
    raise AssertionError(f"unexpected alert: {text!r}")


def severe_logs(drv):
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def frame_elements(drv, root_id):
    return drv.find_elements("css selector", f"#{root_id} .frames > g")


def frame_named(drv, root_id, name):
    names = drv.execute_script(f"return document.getElementById('{root_id}').profkit.names()")
    return frame_elements(drv, root_id)[names.index(name)]


def rect_of(g):
    return g.find_element("tag name", "rect")


def hover(drv, element):
    from selenium.webdriver.common.action_chains import ActionChains

    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    ActionChains(drv).move_to_element(element).perform()


def press_ctrl_f(drv):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(drv).key_down(Keys.CONTROL).send_keys("f").key_up(Keys.CONTROL).perform()


def answer_prompt(drv, text):
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    alert = WebDriverWait(drv, 5).until(EC.alert_is_present())
    alert.send_keys(text)
    alert.accept()


def text_of(drv, root_id, cls):
    return drv.execute_script(f"return document.querySelector('#{root_id} .{cls}').textContent")


# -- a graph on its own -------------------------------------------------------------------
@pytest.fixture
def standalone(driver, tmp_path):
    path = tmp_path / "graph.svg"
    path.write_text(svg_text(name_prefix="solo"), encoding="utf-8")
    driver.get(path.as_uri())
    assert driver.execute_script("return !!document.documentElement.profkit"), severe_logs(driver)
    return driver


def test_hostile_names_are_inert_text(standalone):
    drv = standalone
    assert no_alert(drv)
    assert drv.execute_script("return typeof window.pwned") == "undefined"
    assert drv.execute_script("return document.querySelectorAll('script').length") == 1
    assert drv.execute_script("return document.querySelectorAll('img, svg svg, [onload], [onerror]').length") == 0
    titles = drv.execute_script(
        "return Array.from(document.querySelectorAll('.frames > g > title'), t => t.textContent.split('\\n')[0])")
    for name in HOSTILE:
        assert name in titles
    assert sorted(drv.execute_script("return document.documentElement.profkit.names()")) == sorted(titles)
    assert severe_logs(drv) == []


def test_hover_shows_name_weight_and_share(standalone):
    drv = standalone
    hover(drv, rect_of(frame_named(drv, "solo", "work")))
    assert text_of(drv, "solo", "details") == f"work (70 samples, {100 * 70 / TOTAL:.2f}%)"
    hostile = HOSTILE[0]
    hover(drv, rect_of(frame_named(drv, "solo", hostile)))
    assert text_of(drv, "solo", "details").startswith(hostile + " (5 samples, ")
    assert drv.execute_script("return typeof window.pwned") == "undefined"


def test_click_zooms_and_reset_restores(standalone):
    drv = standalone
    work = frame_named(drv, "solo", "work")
    before = float(rect_of(work).get_attribute("width"))
    rect_of(work).click()
    assert float(rect_of(work).get_attribute("width")) == pytest.approx(1180, abs=0.2)
    # children re-laid out in the zoomed width: json_dump covers all of work
    dump = frame_named(drv, "solo", "json_dump")
    assert float(rect_of(dump).get_attribute("width")) == pytest.approx(1180, abs=0.2)
    # ancestors stay, full width and dimmed; unrelated frames are hidden
    main = frame_named(drv, "solo", "main")
    assert "a" in main.get_attribute("class").split() and main.is_displayed()
    assert float(rect_of(main).get_attribute("width")) == pytest.approx(1180, abs=0.2)
    assert not frame_named(drv, "solo", "idle").is_displayed()
    # the zoomed label fits the wider frame
    assert work.find_element("tag name", "text").text == "work"
    reset = drv.find_element("id", "solo-unzoom")
    assert reset.is_displayed()
    reset.click()
    assert float(rect_of(work).get_attribute("width")) == pytest.approx(before, abs=0.05)
    assert frame_named(drv, "solo", "idle").is_displayed()
    assert not drv.find_element("id", "solo-unzoom").is_displayed()


def test_ctrl_f_searches_and_counts_nested_matches_once(standalone):
    drv = standalone
    press_ctrl_f(drv)
    answer_prompt(drv, "json")
    # json_dump (70) contains another json_dump (20): 70 matched, not 90
    assert text_of(drv, "solo", "matched") == f"Matched: {100 * 70 / TOTAL:.1f}%"
    marked = drv.execute_script(
        "return Array.from(document.querySelectorAll('.frames > g.m > title'), t => t.textContent.split('\\n')[0])")
    assert marked == ["json_dump", "json_dump"]
    fill = drv.execute_script("return getComputedStyle(document.querySelector('.frames > g.m > rect')).fill")
    assert fill == "rgb(230, 0, 230)"
    # the Search button asks again; /re/i ignores case; two disjoint matches add up
    drv.find_element("id", "solo-search").click()
    answer_prompt(drv, "/^(IDLE|work)$/i")
    assert text_of(drv, "solo", "matched") == f"Matched: {100 * 170 / TOTAL:.1f}%"
    # the API gives the same figures; a regex that does not compile says so
    result = drv.execute_script("return document.documentElement.profkit.search('pwned')")
    assert result["count"] == 5
    assert drv.execute_script("return document.documentElement.profkit.search('(')") is None
    assert text_of(drv, "solo", "matched") == "Invalid regular expression"
    drv.execute_script("document.documentElement.profkit.search('leaf')")
    drv.find_element("id", "solo-clear").click()
    assert text_of(drv, "solo", "matched").strip() == ""
    assert drv.execute_script("return document.querySelectorAll('.frames > g.m').length") == 0
    assert no_alert(drv) and drv.execute_script("return typeof window.pwned") == "undefined"


def test_escape_clears_search_then_zoom(standalone):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    drv = standalone
    rect_of(frame_named(drv, "solo", "work")).click()
    drv.execute_script("document.documentElement.profkit.search('json')")
    ActionChains(drv).send_keys(Keys.ESCAPE).perform()
    assert drv.execute_script("return document.querySelectorAll('.frames > g.m').length") == 0
    assert "zoomed" in drv.execute_script("return document.documentElement.getAttribute('class')")
    ActionChains(drv).send_keys(Keys.ESCAPE).perform()
    assert "zoomed" not in drv.execute_script("return document.documentElement.getAttribute('class')")


# -- two graphs on one page ---------------------------------------------------------------
@pytest.fixture
def page(driver, tmp_path):
    a = svg_text(title="Graph A")
    b = svg_text(title="Graph B", inverted=True)
    path = tmp_path / "page.html"
    path.write_text(embed_html([a, b], title="two graphs"), encoding="utf-8")
    driver.get(path.as_uri())
    ids = driver.execute_script("return Array.from(document.querySelectorAll('svg.pkfg'), s => s.id)")
    assert len(ids) == 2 and ids[0] != ids[1]
    assert driver.execute_script("return Array.from(document.querySelectorAll('svg.pkfg')).every(s => !!s.profkit)")
    return driver, ids


def test_embedded_ids_are_unique_and_prefixed(page):
    drv, (a, b) = page
    ids = drv.execute_script("return Array.from(document.querySelectorAll('[id]'), e => e.id)")
    assert len(ids) == len(set(ids))
    for i in ids:
        assert i.split("-")[0] in (a, b)
    assert no_alert(drv) and drv.execute_script("return typeof window.pwned") == "undefined"
    assert severe_logs(drv) == []


def test_ctrl_f_belongs_to_the_graph_under_the_pointer(page):
    drv, (a, b) = page
    hover(drv, rect_of(frame_named(drv, b, "idle")))
    press_ctrl_f(drv)
    answer_prompt(drv, "idle")
    assert text_of(drv, b, "matched") == f"Matched: {100 * 100 / TOTAL:.1f}%"
    assert text_of(drv, a, "matched").strip() == ""
    assert drv.execute_script(f"return document.querySelectorAll('#{a} .frames > g.m').length") == 0
    # hovering A highlights nothing in B's details
    hover(drv, rect_of(frame_named(drv, a, "work")))
    assert text_of(drv, a, "details").startswith("work (")
    assert text_of(drv, b, "details").strip() == ""
    # outside every graph Ctrl-F is left to the browser: no prompt, nothing changes
    hover(drv, drv.find_element("tag name", "h1"))
    press_ctrl_f(drv)
    assert no_alert(drv)
    assert text_of(drv, a, "matched").strip() == ""
    assert text_of(drv, b, "matched") == f"Matched: {100 * 100 / TOTAL:.1f}%"


def test_zoom_in_one_graph_leaves_the_other(page):
    drv, (a, b) = page
    work_a = frame_named(drv, a, "work")
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", work_a)
    rect_of(work_a).click()
    assert float(rect_of(work_a).get_attribute("width")) == pytest.approx(1180, abs=0.2)
    work_b = frame_named(drv, b, "work")
    assert float(rect_of(work_b).get_attribute("width")) == pytest.approx(1180 * 70 / TOTAL, abs=0.2)
    assert frame_named(drv, b, "idle").is_displayed()


def test_a_focused_graph_keeps_ctrl_f_while_the_pointer_is_elsewhere(page):
    drv, (a, b) = page
    work_a = frame_named(drv, a, "work")
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'})", work_a)
    rect_of(work_a).click()  # clicking a graph focuses it
    assert drv.execute_script("return document.activeElement.id") == a
    hover(drv, drv.find_element("tag name", "h1"))
    press_ctrl_f(drv)
    answer_prompt(drv, "work")
    assert text_of(drv, a, "matched") == f"Matched: {100 * 70 / TOTAL:.1f}%"
    assert text_of(drv, b, "matched").strip() == ""
    # but the pointer over another graph wins over focus
    hover(drv, rect_of(frame_named(drv, b, "idle")))
    press_ctrl_f(drv)
    answer_prompt(drv, "idle")
    assert text_of(drv, b, "matched") == f"Matched: {100 * 100 / TOTAL:.1f}%"
    assert text_of(drv, a, "matched") == f"Matched: {100 * 70 / TOTAL:.1f}%"
