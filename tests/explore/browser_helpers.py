"""Helpers of the browser tests (test_browser.py): Debian's headless Chromium, the app served by uvicorn in a
background thread, reading and clicking the page, references computed with the model itself, and the docs'
screenshots.

The pictures of the docs (docs/images/explore*.png) are made from a real run (e.g. the convnet trained three epochs
on Fashion-MNIST) with ``python tests/explore/browser_helpers.py RUN docs/images`` (see :func:`docs_screenshots`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = os.environ.get("NUMCNN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NUMCNN_CHROMEDRIVER", "/usr/bin/chromedriver")
INSTALL = "apt-get install chromium chromium-driver"
STATIC = Path(__file__).resolve().parents[2] / "src" / "numcnn" / "explore" / "static"
CONV, BATCHNORM, RELU, MAXPOOL = "layer1.0", "layer1.1", "layer1.2", "layer1.3"  # the convnet's first block
PIXEL = (3, 14, 12)  # (channel, y, x) of the output pixel clicked


# -- the browser and the servers --------------------------------------------------------------------------------


def chrome():
    """A headless Chromium of Debian's packages (fails, naming the packages, when they are missing)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        pytest.fail(f"the browser tests need Debian's Chromium and its driver ({', '.join(missing)} not found): "
                    f"{INSTALL}", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with the driver's path given too, Selenium Manager downloads nothing
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--force-device-scale-factor=1", "--allow-file-access-from-files"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


@contextmanager
def serving(app):
    """Serve ``app`` with uvicorn on a free port of 127.0.0.1 in a background thread; yields its URL. As
    ``numcnn explore`` does, the kernels run one thread per request meanwhile (set from the main thread)."""
    import uvicorn

    from numcnn.explore import bind
    from numcnn.kernels.runtime import runtime

    with runtime.scoped(threads=1), _uvicorn(uvicorn, app, bind("127.0.0.1", 0)) as url:
        yield url


@contextmanager
def _uvicorn(uvicorn, app, sock):
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def first_conv(model):
    return next(m for n, m in model.named_modules() if n == CONV)


# -- reading the page ---------------------------------------------------------------------------------------------


def wait(driver, condition, what: str, timeout: float = 20):
    """Wait for ``condition(driver)``; on time-out fail naming ``what`` and the page's error banner."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)
    except TimeoutException:
        banner = driver.execute_script("const b = document.getElementById('error-banner');"
                                       "return b && !b.hidden ? b.textContent : '';")
        pytest.fail(f"timed out waiting for {what}; the page's error banner: {banner!r}")


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_page(driver, url: str, mode: str = "live") -> None:
    driver.get(url)
    wait(driver, lambda d: d.execute_script("return document.body.dataset.mode") == mode, f"the {mode} page")


def wait_prediction(driver, source: str) -> None:
    wait(driver, lambda d: css(d, f'#prediction[data-source="{source}"]') and len(css(d, "#bars .bar-row")) > 0,
         f"the prediction for {source}")


def shown_probabilities(driver) -> np.ndarray:
    return np.array([float(e.text.rstrip("%")) / 100 for e in css(driver, "#bars .bar-value")])


def number(driver, element_id: str) -> float:
    from selenium.webdriver.common.by import By

    return float(driver.find_element(By.ID, element_id).text)


SEVEN = [(-70, -80), (60, 0), (70, 0), (-40, 80), (-40, 90)]  # a stroke like a digit 7: start, then moves
TROUSERS = [(-45, 110), (5, -210), (80, 0), (5, 210)]  # an upside-down U, for Fashion-MNIST


def draw_stroke(driver, path=SEVEN) -> None:
    """One stroke on the drawing canvas with the mouse (pointer events): ``path`` = start (from the canvas's
    centre), then relative moves, in CSS pixels."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "draw")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    actions = ActionChains(driver, duration=60).move_to_element_with_offset(canvas, *path[0]).click_and_hold()
    for dx, dy in path[1:]:
        actions.move_by_offset(dx, dy)
    actions.release().perform()


def click_map_pixel(driver, layer: str, channel: int, y: int, x: int) -> None:
    """Click output pixel (channel, y, x) on ``layer``'s feature map and wait for its explanation."""
    from selenium.webdriver.common.action_chains import ActionChains

    (canvas,) = css(driver, f'.layer-card[data-layer="{layer}"] canvas[data-channel="{channel}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    w, h = int(canvas.get_attribute("width")), int(canvas.get_attribute("height"))
    size = canvas.size
    dx, dy = (x + 0.5) * size["width"] / w - size["width"] / 2, (y + 0.5) * size["height"] / h - size["height"] / 2
    ActionChains(driver).move_to_element_with_offset(canvas, round(dx), round(dy)).click().perform()
    want = {"layer": layer, "channel": str(channel), "y": str(y), "x": str(x), "state": "done"}
    wait(driver, lambda d: d.execute_script("return Object.assign({}, document.getElementById('explain').dataset)")
         == want, f"the explanation of {layer} {(channel, y, x)}")


# -- references computed here -------------------------------------------------------------------------------------


def run_model(explorer, pixels: np.ndarray) -> tuple[np.ndarray, dict]:
    """(softmax probabilities, {layer name: (input, output)}) of the explorer's model on ``pixels`` (C, H, W),
    normalised here with the run's mean and std; hooks record every leaf layer."""
    from numcnn.autograd import Tensor, no_grad

    norm = explorer.config["normalization"]
    mean = np.asarray(norm["mean"], np.float32).reshape(-1, 1, 1)
    std = np.asarray(norm["std"], np.float32).reshape(-1, 1, 1)
    seen, handles = {}, []
    for name, module in explorer.model.named_modules():
        if name and not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: seen.__setitem__(name, (i[0].array[0].copy(), o.array[0].copy()))))
    try:
        with no_grad():
            logits = explorer.model(Tensor(((pixels - mean) / std)[None].astype(np.float32))).array[0]
    finally:
        for h in handles:
            h.remove()
    z = logits.astype(np.float64) - logits.max()
    return np.exp(z) / np.exp(z).sum(), seen


def conv_by_hand(conv, x: np.ndarray, c: int, y: int, x_: int) -> tuple[float, float]:
    """(sum of products + bias, sum of |products| + |bias|) of output pixel (c, y, x_), float64 loops."""
    ph, pw = conv.padding
    w = conv.weight.array.astype(np.float64)
    padded = np.pad(x.astype(np.float64), ((0, 0), (ph, ph), (pw, pw)))
    r, s = w.shape[2:]
    products = padded[:, y:y + r, x_:x_ + s] * w[c]
    bias = float(conv.bias.data[c])
    return float(products.sum()) + bias, float(np.abs(products).sum()) + abs(bias)


# -- the pictures of the docs -------------------------------------------------------------------------------------


def save_small(driver, path: Path) -> None:
    """A screenshot as a 256-colour PNG (the page is flat colours: a third of the size, for the repository)."""
    from PIL import Image

    driver.save_screenshot(str(path))
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def docs_screenshots(run: str, out: str) -> None:
    """``python tests/explore/test_browser.py RUN DIR``: the docs' screenshots of a real run (e.g. a convnet
    trained on Fashion-MNIST) into DIR: explore.png (a drawing and its prediction), explore-explain.png (a
    pixel of the second convolution explained), explore-training.png (curves and confusion matrix)."""
    from numcnn.explore import create_app

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    driver = chrome()
    try:
        with serving(create_app(run)) as url:
            open_page(driver, url)
            wait_prediction(driver, "test image 0")
            driver.execute_script("document.getElementById('class-select').value = '7';"
                                  "document.getElementById('class-select').dispatchEvent(new Event('change'))")
            wait(driver, lambda d: len(css(d, "#gallery .example")) > 0, "the gallery")
            draw_stroke(driver, TROUSERS)
            wait_prediction(driver, "drawing")
            wait(driver, lambda d: css(d, "#gradcam-map"), "the saliency maps")
            driver.execute_script("window.scrollTo(0, 0)")
            save_small(driver, out_dir / "explore.png")
            click_map_pixel(driver, "layer2.0", 5, 7, 6)  # the second convolution: 16 input channels
            save_small(driver, out_dir / "explore-explain.png")
            driver.execute_script("document.getElementById('training').scrollIntoView()")
            save_small(driver, out_dir / "explore-training.png")
    finally:
        driver.quit()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/explore/browser_helpers.py RUN DIR")
    docs_screenshots(sys.argv[1], sys.argv[2])
