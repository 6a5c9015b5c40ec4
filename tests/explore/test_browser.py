"""The page of ``numcnn explore`` in a real browser: Debian's headless Chromium driven by Selenium.

The live app (conftest's tiny trained run, served by uvicorn in a background thread on a free port) is drawn on,
its prediction compared with the model's own softmax, one convolution pixel clicked and the page's sum + bias
compared with a float64 sum written here and with the float32 activation of the real forward pass; a second app
whose first convolution's forward uses a deliberately wrong kernel must make the page show the mismatch. The
misclassified browser and the confusion matrix are checked against predictions computed here, an error of the
server must appear in the page, and the static export is opened from file:// and checked the same way (there
the page does the pixel arithmetic itself, in float64 JavaScript).

Screenshots go to a temporary folder, and also into $NUMCNN_SCREENSHOTS when it is set (the docs' pictures come
from ``python tests/explore/browser_helpers.py RUN docs/images`` on a real run). The helpers (browser, server,
reading the page, references) are in browser_helpers.py.

Chromium and its driver come from Debian (``apt-get install chromium chromium-driver``); when they are missing
the tests fail saying so (never a silent skip), and Selenium is never allowed to download a browser.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

# tests/ is on sys.path (pyproject's pythonpath), so this folder's helper module is explore.browser_helpers
from explore.browser_helpers import (
    BATCHNORM,
    CONV,
    MAXPOOL,
    PIXEL,
    STATIC,
    chrome,
    click_map_pixel,
    conv_by_hand,
    css,
    draw_stroke,
    first_conv,
    number,
    open_page,
    run_model,
    serving,
    shown_probabilities,
    wait,
    wait_prediction,
)

# -- fixtures: the browser, the servers, the screenshots ----------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def live(app):
    with serving(app) as url:
        yield url


@pytest.fixture(scope="module")
def wrong_live(trained_run):
    """An app whose first convolution computes its forward pass with a deliberately wrong kernel (the centre tap
    of every filter raised by 0.25), while the explanation reads the layer's real weights."""
    from numcnn.autograd import Tensor
    from numcnn.explore import Explorer, create_app
    from numcnn.nn import functional as F

    explorer = Explorer.open(trained_run)
    conv = first_conv(explorer.model)
    wrong = conv.weight.array.copy()
    wrong[:, :, wrong.shape[2] // 2, wrong.shape[3] // 2] += 0.25

    def wrong_forward(x):
        return F.conv2d(x, Tensor(wrong), conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    conv.forward = wrong_forward
    with serving(create_app(explorer)) as url:
        yield url, explorer


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """save(driver, name): a screenshot into a temporary folder and into $NUMCNN_SCREENSHOTS when set."""
    folder = tmp_path_factory.mktemp("screenshots")
    extra = os.environ.get("NUMCNN_SCREENSHOTS")

    def save(driver, name: str) -> Path:
        path = folder / name
        assert driver.save_screenshot(str(path)), f"no screenshot {name}"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / name)
        return path

    return save


def check_conv_pixel(driver, explorer, pixels: np.ndarray) -> tuple[float, float, float]:
    """The page's conv numbers against references: returns (result, activation, tolerance * scale) as shown."""
    c, y, x = PIXEL
    _, seen = run_model(explorer, pixels)
    conv_in, conv_out = seen[CONV]
    expected, scale = conv_by_hand(first_conv(explorer.model), conv_in, c, y, x)
    s, b, result = number(driver, "explain-sum"), number(driver, "explain-bias"), number(driver, "explain-result")
    activation, tolerance = number(driver, "explain-activation"), number(driver, "explain-tolerance")
    assert tolerance == 1e-4
    assert result == pytest.approx(s + b, rel=1e-8, abs=1e-9)  # the page's result is its sum plus its bias
    assert result == pytest.approx(expected, rel=1e-8, abs=1e-9)  # ... and the float64 sum written here
    assert activation == pytest.approx(float(conv_out[c, y, x]), rel=1e-8, abs=1e-9)  # the real forward pass
    return result, activation, tolerance * scale


# -- the tests ----------------------------------------------------------------------------------------------------


def test_draw_predict_and_explain_a_conv_pixel(browser, live, explorer, unpack, shots):
    open_page(browser, live)
    paint = wait(browser, lambda d: d.execute_script(
        "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : 0"),
        "the first contentful paint")
    assert 0 < paint < 3000, f"first contentful paint after {paint} ms"
    draw_stroke(browser)
    wait_prediction(browser, "drawing")
    pixels = unpack(browser.execute_script("return NX.app.state.input.pixels"))
    assert pixels.shape == (1, 28, 28) and pixels.dtype == np.float32
    assert pixels.min() >= 0 and pixels.max() > 0.9 and 0.03 < (pixels > 0.5).mean() < 0.4  # a white stroke
    probabilities, _ = run_model(explorer, pixels)
    np.testing.assert_allclose(shown_probabilities(browser), probabilities, atol=0.0006)
    predicted = explorer.classes[int(probabilities.argmax())]
    assert css(browser, "#predicted")[0].text.startswith(f"predicted: {predicted} (")
    wait(browser, lambda d: css(d, "#saliency-map") and css(d, "#gradcam-map"), "the saliency maps")
    shots(browser, "explore.png")
    click_map_pixel(browser, CONV, *PIXEL)
    result, activation, allowed = check_conv_pixel(browser, explorer, pixels)
    assert abs(result - activation) <= allowed  # float32 rounding only
    within = css(browser, "#explain-within")[0]
    assert within.get_attribute("data-within") == "true" and "within tolerance" in within.text
    shots(browser, "explore-explain.png")


def test_drawing_with_a_finger(browser, live, explorer, unpack):
    """Touch events reach the canvas as pointer events too (a phone or a tablet)."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    open_page(browser, live)
    (canvas,) = css(browser, "#draw")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    actions = ActionBuilder(browser, mouse=PointerInput(interaction.POINTER_TOUCH, "finger"), duration=40)
    actions.pointer_action.move_to(canvas, 0, -100).pointer_down()
    for y in range(-80, 120, 20):  # a vertical line, like a digit 1
        actions.pointer_action.move_to(canvas, 0, y)
    actions.pointer_action.pointer_up()
    actions.perform()
    wait_prediction(browser, "drawing")
    pixels = unpack(browser.execute_script("return NX.app.state.input.pixels"))
    ink = pixels[0] > 0.5
    assert ink[4:24, 13:15].all() and not ink[:, :10].any() and not ink[:, 18:].any()  # a vertical stroke
    probabilities, _ = run_model(explorer, pixels)
    np.testing.assert_allclose(shown_probabilities(browser), probabilities, atol=0.0006)


def test_a_wrong_kernel_shows_as_a_mismatch(browser, wrong_live, unpack, shots):
    url, explorer = wrong_live
    open_page(browser, url)
    draw_stroke(browser)
    wait_prediction(browser, "drawing")
    pixels = unpack(browser.execute_script("return NX.app.state.input.pixels"))
    click_map_pixel(browser, CONV, *PIXEL)
    result, activation, allowed = check_conv_pixel(browser, explorer, pixels)
    assert abs(result - activation) > 100 * allowed  # the check fails: the forward pass is not the formula
    within = css(browser, "#explain-within")[0]
    assert within.get_attribute("data-within") == "false" and "MISMATCH" in within.text
    shots(browser, "explore-mismatch.png")


def test_misclassified_browser_and_confusion_matrix(browser, live, explorer, shots):
    test = explorer.test
    preds = np.array([run_model(explorer, test.pixels(i))[0].argmax() for i in range(len(test))])
    labels = np.asarray(test.labels)
    wrong = np.flatnonzero(preds != labels)
    assert len(wrong) > 0, "the tiny run classifies every test image right: nothing to browse"
    open_page(browser, live)
    wait_prediction(browser, "test image 0")
    css(browser, "#show-misclassified")[0].click()
    wait(browser, lambda d: "misclassified test images:" in css(d, "#gallery-title")[0].text, "the misclassified")
    title = css(browser, "#gallery-title")[0].text
    assert title.startswith(f"misclassified test images: {len(wrong)} image"), title
    shown = browser.execute_script("return [...document.querySelectorAll('#gallery .example')]"
                                   ".map(e => [+e.dataset.index, e.classList.contains('wrong')])")
    assert [i for i, _ in shown] == list(wrong[:48]) and all(w for _, w in shown)
    i = shown[-1][0]
    css(browser, f'#gallery .example[data-index="{i}"]')[0].click()
    wait_prediction(browser, f"test image {i}")
    probabilities, _ = run_model(explorer, test.pixels(i))
    np.testing.assert_allclose(shown_probabilities(browser), probabilities, atol=0.0006)
    assert css(browser, "#predicted")[0].text.startswith(f"predicted: {explorer.classes[preds[i]]} (")
    assert f"(true class: {explorer.classes[labels[i]]})" in css(browser, "#input-source")[0].text
    shots(browser, "explore-misclassified.png")
    # the confusion matrix: every count equals the one computed here; a cell browses its images
    matrix = np.zeros((len(explorer.classes),) * 2, int)
    np.add.at(matrix, (labels, preds), 1)
    wait(browser, lambda d: css(d, "#confusion td"), "the confusion matrix")
    cells = {(t, p): int(v) for t, p, v in browser.execute_script(
        "return [...document.querySelectorAll('#confusion td')].map(td => [+td.dataset.true, +td.dataset.pred,"
        " td.textContent])")}
    assert cells == {(t, p): int(matrix[t, p]) for t in range(len(matrix)) for p in range(len(matrix))}
    t, p = max(((t, p) for (t, p) in cells if t != p), key=lambda tp: matrix[tp])
    css(browser, f'#confusion td[data-true="{t}"][data-pred="{p}"]')[0].click()
    want = f"{explorer.classes[t]} predicted as {explorer.classes[p]}: {matrix[t, p]} image"
    wait(browser, lambda d: css(d, "#gallery-title")[0].text.startswith(want), f"the cell ({t}, {p})")
    shown = browser.execute_script("return [...document.querySelectorAll('#gallery .example')]"
                                   ".map(e => +e.dataset.index)")
    assert shown == list(np.flatnonzero((labels == t) & (preds == p))[:48])


def test_upload_shows_the_prepared_image_and_its_steps(browser, live, explorer, client, unpack, tmp_path):
    from PIL import Image, ImageDraw

    photo = Image.new("L", (90, 120), 235)  # dark ink on light paper, not the dataset's size: prepared and inverted
    ImageDraw.Draw(photo).rectangle((30, 20, 60, 100), fill=20)
    path = tmp_path / "photo.png"
    photo.save(path)
    open_page(browser, live)
    css(browser, "#upload-file")[0].send_keys(str(path))
    wait_prediction(browser, "upload photo.png")
    expected = client.post("/api/upload", files={"file": ("photo.png", path.read_bytes(), "image/png")}).json()
    assert [li.text for li in css(browser, "#upload-steps li")] == expected["steps"]
    assert expected["inverted"] is True
    pixels = unpack(browser.execute_script("return NX.app.state.input.pixels"))
    np.testing.assert_array_equal(pixels, unpack(expected["pixels"]))
    probabilities, _ = run_model(explorer, pixels)
    np.testing.assert_allclose(shown_probabilities(browser), probabilities, atol=0.0006)


def test_a_server_error_is_shown_in_the_page(browser, live, client):
    open_page(browser, live)
    browser.execute_script("NX.app.setInput({test: 100000}, 'test image 100000')")
    wait(browser, lambda d: d.execute_script("return !document.getElementById('error-banner').hidden"),
         "the error banner")
    expected = client.post("/api/forward", json={"input": {"test": 100000}}).json()["error"]
    assert css(browser, "#error-banner")[0].text == expected
    assert css(browser, "#bars .error")[0].text == expected
    # nothing of the previous input stays on the page as if it belonged to this one
    assert css(browser, "#predicted")[0].text == "" and not css(browser, "#layers .layer-card, #heatmaps canvas")


def test_static_export_from_file(browser, trained_run, explorer, tmp_path, shots):
    from numcnn.explore import export_site

    site = tmp_path / "site"
    export_site(trained_run, site, images=4)
    open_page(browser, (site / "index.html").as_uri(), mode="static")
    assert css(browser, "#static-note")[0].is_displayed()
    assert "numcnn explore RUN" in css(browser, "#static-note")[0].text
    assert "disabled" in css(browser, "#draw")[0].get_attribute("class")
    wait(browser, lambda d: (css(d, "#prediction")[0].get_attribute("data-source") or "").startswith("test image")
         and css(d, "#bars .bar-row"), "the first exported test image")
    i = int(css(browser, "#prediction")[0].get_attribute("data-source").split()[-1])
    probabilities, seen = run_model(explorer, explorer.test.pixels(i))
    np.testing.assert_allclose(shown_probabilities(browser), probabilities, atol=0.0006)
    # the convolution pixel, computed by the page in float64 JavaScript from the exported input and weights
    click_map_pixel(browser, CONV, *PIXEL)
    result, activation, allowed = check_conv_pixel(browser, explorer, explorer.test.pixels(i))
    assert abs(result - activation) <= allowed
    assert css(browser, "#explain-within")[0].get_attribute("data-within") == "true"
    shots(browser, "explore-static.png")
    # batch norm with the running statistics, and the max-pool window's winner
    c, y, x = PIXEL
    bn = dict(explorer.model.named_modules())[BATCHNORM]
    value = float(seen[BATCHNORM][0][c, y, x])
    std = np.sqrt(float(bn.running_var.data[c]) + bn.eps)
    expected = (value - float(bn.running_mean.data[c])) / std * float(bn.weight.data[c]) + float(bn.bias.data[c])
    click_map_pixel(browser, BATCHNORM, *PIXEL)
    assert number(browser, "explain-result") == pytest.approx(expected, rel=1e-7, abs=1e-8)
    assert number(browser, "explain-activation") == pytest.approx(float(seen[BATCHNORM][1][c, y, x]), rel=1e-7)
    click_map_pixel(browser, MAXPOOL, c, y // 2, x // 2)
    window = seen[MAXPOOL][0][c, y // 2 * 2:y // 2 * 2 + 2, x // 2 * 2:x // 2 * 2 + 2]
    assert number(browser, "explain-result") == pytest.approx(float(window.max()), rel=1e-7)
    (winner,) = css(browser, "#explain-body td.winner")
    assert float(winner.text) == pytest.approx(float(window.max()), rel=1e-3, abs=1e-3)
    # every explainable layer: the page's JavaScript arithmetic equals the server's float64 naive kernel
    for layer in (d for d in explorer.layers if d["explain"]):
        c, y, x = (s // 2 for s in layer["shape"])
        page = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "NX.api.explain({test: arguments[0]}, arguments[1], arguments[2], arguments[3], arguments[4])"
            ".then(done, e => done({error: String(e)}))", i, layer["name"], c, y, x)
        server = explorer.explain({"input": {"test": i}, "layer": layer["name"], "channel": c, "y": y, "x": x})
        assert page["kind"] == server["kind"] and page["within"] is server["within"] is True, (page, layer)
        assert page["result"] == pytest.approx(server["result"], rel=1e-12, abs=1e-12), layer["name"]
        assert page["activation"] == server["activation"], layer["name"]


def test_the_page_alone_says_how_to_open_it(browser):
    """static/index.html opened by itself (no app, no export): a message, not a page that waits for ever."""
    browser.get((STATIC / "index.html").as_uri())
    wait(browser, lambda d: d.execute_script("return !document.getElementById('error-banner').hidden"), "the banner")
    text = css(browser, "#error-banner")[0].text
    assert "did not load" in text and "`numcnn explore RUN`" in text


def test_assets_are_small_and_offline():
    """The page ships whole inside the package: under 1 MB, and no URL of the internet in it."""
    files = [p for p in STATIC.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"index.html", "app.js", "api.js", "style.css"}
    assert sum(p.stat().st_size for p in files) < 1_000_000
    for p in files:
        text = p.read_text().replace('"http://www.w3.org/2000/svg"', "")  # SVG's namespace name, never fetched
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, p.name


