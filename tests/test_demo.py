"""`ptdit demo`: the checks, generation and attention pictures of its engine, the command's errors, and the page in
a real browser (Debian's chromium driven headless by Playwright; skipped with a reason where either is missing).

The browser test starts `ptdit demo` on a free port of 127.0.0.1 with its own output folder, generates on the image,
video and multi-view tabs (held-out prompts at 8 steps, seeds that the golden tests use) and has the world's judge
accept what the page shows, opens the attention view, tries bad input and reads the messages, and saves
screenshots (into $PTDIT_DEMO_SCREENSHOTS if set, else the test's folder). It stops its own server.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from ptdit.cli import main
from ptdit.extras import available
from ptdit.pipeline_config import bundled_model_dir
from ptdit.worlds.judges import judge

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PROMPTS = {  # (prompt, seed): held-out compositions the golden tests pass at 5-20 steps
    "image": ("a red triangle below a gray circle", 0),
    "video": ("a red triangle moving to the left and a yellow circle moving left", 2),
    "multiview": ("an orbit around a yellow pyramid", 1),
}
WORLD = {"image": "shapes-image", "video": "shapes-video", "multiview": "shapes-multiview"}
STEPS = 8


@pytest.fixture(scope="module")
def image_model():
    from ptdit.demo.engine import DemoModel

    torch.set_num_threads(1)
    return DemoModel(bundled_model_dir("image"), "cpu")


# ------------------------------------------------------------------------------------------------ engine
def test_check_gives_one_line_errors(image_model):
    m = image_model
    cases = {
        "empty prompt": dict(prompt="   "),
        "steps 0 is out of range: use 1..200": dict(prompt="a red circle", steps=0),
        "steps must be a whole number": dict(prompt="a red circle", steps=2.5),
        "height 1024 is out of range: use 8..128": dict(prompt="a red circle", height=1024),
        "width must be a multiple of 8": dict(prompt="a red circle", width=30),
        "CFG -1 is out of range": dict(prompt="a red circle", cfg=-1),
        "seed must be a whole number": dict(prompt="a red circle", seed="abc"),
    }
    for text, kwargs in cases.items():
        with pytest.raises(ValueError) as info:
            m.check(**kwargs)
        assert text in str(info.value) and "\n" not in str(info.value), (kwargs, str(info.value))
    s = m.check("a red circle", "", 3, False, None, None, None, None, None)
    assert (s.seed, s.steps, s.cfg, s.height, s.width, s.frames) == (3, 20, 4.0, 32, 32, 1)
    seeds = {m.check("a red circle", random_seed=True).seed for _ in range(4)}
    assert len(seeds) > 1  # "random" draws a seed, which the result then carries


def test_generate_matches_ptdit_generate_and_records_its_steps(tmp_path, image_model):
    """The demo's sample is `ptdit generate`'s for the same prompt, seed and settings (same files, judged right),
    with the latents entering every step recorded for the attention view."""
    m = image_model
    prompt, seed = PROMPTS["image"]
    s = m.check(prompt, seed=seed, steps=STEPS)
    r = m.generate(s, tmp_path / "demo")
    assert r.manifest["outputs"][0]["seed"] == seed and r.manifest["settings"]["steps"] == STEPS
    assert len(r.latents) == STEPS and len(r.timesteps) == STEPS and r.timesteps[0] == pytest.approx(1000.0)
    assert r.text.shape[0] == 1 and r.text_mask.dtype == torch.bool
    assert judge("shapes-image", r.frames[0], prompt).ok
    out = tmp_path / "cli"
    argv = ["generate", prompt, "--seed", str(seed), "--steps", str(STEPS), "--out", str(out), "--quiet"]
    assert main([*argv, "--device", "cpu", "--upscale", "1"]) == 0
    cli = np.asarray(Image.open(next(out.glob("0000_*.png"))).convert("RGB"))
    assert np.abs(cli.astype(int) - r.frames[0].astype(int)).max() <= 2  # the same path (float rounding)
    written = json.loads((tmp_path / "demo" / "manifest-0000.json").read_text())
    assert written["outputs"][0]["files"] == [f for f in r.files if not f.startswith("manifest")]


def test_two_requests_at_once_do_not_cross(tmp_path, image_model):
    """Two threads generating at once on one model: each result is what it is alone, with its own seed."""
    m = image_model
    reqs = [
        m.check("a red circle to the left of a blue square", seed=5, steps=3),
        m.check("a gray triangle", seed=9, steps=3),
    ]
    alone = [m.generate(s, tmp_path / "alone").frames[0] for s in reqs]
    results: dict[int, object] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.__setitem__(i, m.generate(reqs[i], tmp_path / "both")))
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, s in enumerate(reqs):
        r = results[i]
        assert (r.settings.seed, r.settings.prompt) == (s.seed, s.prompt)
        assert r.manifest["outputs"][0]["seed"] == s.seed
        assert np.array_equal(r.frames[0], alone[i])
    assert results[0].manifest["run"] != results[1].manifest["run"]  # separate numbered files


def test_attention_pictures_and_save_attention(tmp_path, image_model):
    from ptdit.demo.engine import attention_pictures, save_attention

    m = image_model
    r = m.generate(m.check(PROMPTS["image"][0], seed=0, steps=4), tmp_path)
    maps = m.maps(r, step=2, block=1, window=5)
    assert maps.kinds == ["proxy_self", "token_to_proxy", "local"]
    assert maps.proxy_self.shape == (16, 16) and torch.allclose(maps.proxy_self.sum(-1), torch.ones(16))
    pictures = attention_pictures(m, r, maps)
    assert len(pictures) == 5 and all(p.dtype == np.uint8 and p.shape[2] == 3 for p, _ in pictures)
    grid_picture = pictures[0][0]  # window borders every 8 px (x8 enlarged), the chosen window outlined
    assert (grid_picture[[0, 128, 192]] == 255).all() and (grid_picture[:, [0, 192]] == 255).all()
    cyan = (grid_picture == (0, 200, 255)).all(-1)  # window 5 = row 1, column 1: pixels 64..127
    assert (
        cyan[64, 64:128].all() and cyan[64:128, 127].all() and not cyan[:, :62].any() and not cyan[130:].any()
    )
    one = m.maps(r, step=2, block=1, window=5, head=0)
    assert not torch.allclose(one.proxy_self, maps.proxy_self)
    with pytest.raises(ValueError, match="step 9 is out of range"):
        m.maps(r, step=9, block=1)
    with pytest.raises(ValueError, match="head 7 is out of range"):
        m.maps(r, step=1, block=1, head=7)
    names = save_attention(m, r, "x", step=1, blocks=[0, 5])
    assert names[0] == "x_attn_windows.png" and len(names) == 1 + 2 * 4
    for n in names:
        assert Image.open(tmp_path / n).size[0] >= 64


def test_generate_save_attention_writes_maps_next_to_the_output(tmp_path):
    out = tmp_path / "out"
    argv = ["generate", "a green square growing", "--task", "video", "--steps", "2", "--out", str(out)]
    assert main([*argv, "--quiet", "--device", "cpu", "--save-attention"]) == 0
    names = sorted(p.name for p in out.glob("0000_*_attn_*.png"))
    assert "0000_a-green-square-growing_attn_windows.png" in names
    assert "0000_a-green-square-growing_attn_step01_block0_proxy_self.png" in names
    assert len(names) == 1 + 6 * 4  # six blocks: proxy self, a window's proxy, token->proxy, local


def test_demo_command_rejects_a_bad_model_in_one_line(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ptdit demo: error:") and "does not exist" in err and "\n" not in err


# ------------------------------------------------------------------------------------------------ browser
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser_missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed (scripts/setup.sh installs it when run as root)"
    for module, extra in (("playwright", "dev"), ("gradio", "demo")):
        if not available(module):
            return f"{module} is not installed (pip install 'ptdit[{extra}]')"
    return None


def _fetch(page, locator) -> bytes:
    src = locator.get_attribute("src")
    assert src, "no image in the page"
    response = page.request.get(
        src if src.startswith("http") else page.url.rstrip("/") + "/" + src.lstrip("/")
    )
    assert response.ok, src
    return response.body()


def _sample(task: str, data: bytes, up: int) -> np.ndarray:
    """What the page shows, at the model's size, as (3, F, H, W) uint8."""
    img = Image.open(io.BytesIO(data))
    if task == "video":
        frames = [np.asarray(f.convert("RGB"))[::up, ::up] for f in ImageSequence.Iterator(img)]
    elif task == "multiview":
        grid = np.asarray(img.convert("RGB"))
        cell = (32 + 2) * up  # 32 px views, 2 px apart, enlarged `up` times
        frames = [grid[:, v * cell : v * cell + 32 * up][::up, ::up] for v in range(8)]
    else:
        frames = [np.asarray(img.convert("RGB"))[::up, ::up]]
    return np.stack(frames).transpose(3, 0, 1, 2)


@pytest.mark.slow
def test_demo_in_a_browser(tmp_path):
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("PTDIT_DEMO_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", "NO_PROXY": "127.0.0.1"}
    cmd = [
        sys.executable,
        "-m",
        "ptdit",
        "demo",
        "--port",
        str(port),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "out"),
    ]
    server = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                assert time.monotonic() < deadline, "ptdit demo did not start in 120 s"
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"),  # a fresh profile
                executable_path=CHROMIUM,
                headless=True,
                viewport={"width": 1280, "height": 1000},
                args=[
                    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                ],
            )  # fmt: skip
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            for task in ("image", "video", "multiview"):
                prompt, seed = PROMPTS[task]
                page.get_by_role(
                    "tab", name={"image": "Image", "video": "Video", "multiview": "Multi-view"}[task]
                ).click()
                page.locator(f"#{task}-prompt textarea").fill(prompt)
                page.locator(f"#{task}-seed input").fill(str(seed))
                page.locator(f"#{task}-steps input").fill(str(STEPS))
                page.locator(f"#{task}-generate").click()
                expect(page.locator(f"#{task}-status")).to_contain_text(f"Seed {seed}, {STEPS} steps")
                image = page.locator(f"#{task}-image img").first
                expect(image).to_be_visible()
                sample = _sample(task, _fetch(page, image), up=8)
                assert sample.shape[2:] == (32, 32)
                verdict = judge(WORLD[task], sample, prompt)
                assert verdict.ok, (task, verdict.criteria, verdict.details)
                expect(page.locator(f"#{task}-manifest")).to_contain_text(prompt)
                if task == "video":
                    expect(page.locator("#video-video video")).to_have_count(1)
                page.screenshot(path=str(shots / f"demo_{task}.png"), full_page=True)

            # looking inside the image sample
            page.get_by_role("tab", name="Image").click()
            page.locator("#image-inside").get_by_text("Looking inside").click()
            page.locator("#image-window input").fill("5")
            page.locator("#image-show").click()
            expect(page.locator("#image-inside-status")).to_contain_text("proxy_self, token_to_proxy, local")
            expect(page.locator("#image-gallery img")).to_have_count(5)
            page.screenshot(path=str(shots / "demo_attention.png"), full_page=True)
            page.locator("#image-window input").fill("99")
            page.locator("#image-show").click()
            expect(page.locator("#image-inside-status")).to_contain_text("window 99 is out of range")

            # bad input: a message in the page, and the server keeps serving
            page.locator("#image-prompt textarea").fill("")
            page.locator("#image-generate").click()
            expect(page.locator("#image-status")).to_contain_text("empty prompt")
            page.locator("#image-prompt textarea").fill("a red circle")
            page.locator("#image-steps input").fill("0")
            page.locator("#image-generate").click()
            expect(page.locator("#image-status")).to_contain_text("steps 0 is out of range")
            assert "Traceback" not in page.content()
            page.screenshot(path=str(shots / "demo_error.png"), full_page=True)
            page.locator("#image-steps input").fill("2")
            page.locator("#image-generate").click()
            expect(page.locator("#image-status")).to_contain_text("Seed 0, 2 steps")
            browser.close()
        assert server.poll() is None
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
