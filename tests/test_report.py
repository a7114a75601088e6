"""`report`: one self-contained HTML page; untrusted review text is escaped; checked in a real browser."""

import base64
import io
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from models.run_dir import RunDir
from conftest import built_once
from pipeline import synthetic

HOSTILE = ['great excellent love perfect <script>window.__xss = 1</script> wonderful',
           'great amazing perfect love <img src=x onerror="window.__xss = 2"> best']


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    """A tiny study (two models) whose test split holds hostile reviews that are confident mistakes."""
    return built_once(tmp_path_factory, "report-study", make_study)


def make_study(root):
    train = synthetic.write_corpus(root / "train.ft.txt", 1500, 1, 20, agreement=0.9, label_noise=0)
    test = root / "test.ft.txt"
    lines = list(synthetic.generate_lines(200, 2, 20, agreement=0.9, label_noise=0))
    test.write_bytes(b"".join(lines) + "".join(f"__label__1 {text}\n" for text in HOSTILE).encode())
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out", str(root / "data"),
                                     "--num-shards", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli.cli, ["study", "--data", str(root / "data"), "--out", str(root / "runs"), "--models",
                                     "ffn,linear", "--epochs", "3", "--max-len", "48", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "report.html" in result.output  # study writes it by default


def test_the_page_holds_every_run_and_escapes_reviews(study_dir):
    page = (study_dir / "runs" / "report.html").read_text()
    assert len(page) < 5_000_000
    # The mistakes' words are shaded (a span per word); without the spans, each hostile review reads as it was.
    shaded = re.findall(r'<span class="word" style="background: rgba\([0-9, ]+, [01]\.\d\d\)" title="[+-]\d+\.\d{3}">'
                        r'([^<]*)</span>', page)
    assert {"script", "xss", "onerror"} <= set(shaded)
    text = re.sub(r'<span class="word"[^>]*>([^<]*)</span>', r"\1", page)
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in text and "window.__xss = 1</script>" not in page
    assert "&lt;img src=x onerror=" in text and "<img src=x" not in page
    assert "integrated gradients, 50 steps" in page and "exact: weight times feature" in page
    assert len(re.findall(r"<script>", page)) == 1  # only the page's own table sorter
    assert 'src="http' not in page and "src='http" not in page  # nothing fetched from a network
    for name in ("ffn", "linear"):
        assert f"<h2>{name} " in page
    # Each run's figures say what was scored: the test split here (evaluate --file: "N examples of FILE").
    test_reviews = RunDir(study_dir / "runs" / "ffn").metrics()["num_examples"]
    assert page.count(f"On {test_reviews:,} test examples: accuracy ") == 2
    for figure in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert base64.b64decode(figure)[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_with_the_data_section(study_dir, tmp_path):
    runs = study_dir / "runs"
    result = CliRunner().invoke(cli.cli, ["report", str(runs / "ffn"), str(runs / "linear"), "--data",
                                          str(study_dir / "data"), "--out", str(tmp_path / "r"), "--errors", "1"])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r" / "report.html").read_text()
    assert "The data" in page and "no_label" not in page and "Vocabulary:" in page and "&le; 100" in page
    assert page.count("false positive") <= 2 and page.count("false negative") <= 2  # one of each kind per run
    metrics = RunDir(runs / "ffn").metrics()
    assert {"by_length", "calibration", "f1_threshold", "roc_curve"} <= set(metrics)
    assert (runs / "ffn" / "errors.jsonl").exists() and (runs / "ffn" / "reliability.png").exists()


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium/chromedriver on this machine (Debian: apt-get install chromium chromium-driver; "
                    ".ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,2000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_the_report_in_a_real_browser(study_dir):
    browser = _browser()
    try:
        browser.get((study_dir / "runs" / "report.html").as_uri())
        assert browser.execute_script("return typeof window.__xss") == "undefined"  # no injected code ran
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert images and all(complete and width > 0 for complete, width in images)  # every image decodes
        rows = browser.execute_script(
            "return Array.from(document.querySelectorAll('#comparison-table tbody tr'))"
            ".map(r => r.cells[0].textContent)")
        assert sorted(rows) == ["ffn", "linear"]
        weights = browser.execute_script("return Array.from(document.querySelectorAll('td.text span.word'))"
                                          ".map(s => [s.title, getComputedStyle(s).backgroundColor])")
        assert weights and all(float(title) == float(title) and colour.startswith("rgba(") for title, colour in weights)
        header = browser.execute_script(
            "return Array.from(document.querySelectorAll('#comparison-table th')).find(h => h.textContent == 'model')")
        header.click()
        assert browser.execute_script("return document.querySelector('#comparison-table tbody tr')"
                                      ".cells[0].textContent") == "ffn"
        header.click()  # a second click reverses the order
        assert browser.execute_script("return document.querySelector('#comparison-table tbody tr')"
                                      ".cells[0].textContent") == "linear"
        import matplotlib.image

        screenshot = matplotlib.image.imread(io.BytesIO(browser.get_screenshot_as_png()), format="png")
        assert np.std(screenshot) > 0.05  # not a blank page
    finally:
        browser.quit()
