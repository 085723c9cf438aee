"""Judges of the Shapes worlds: validated on ground truth (clean, noisy, blurred), layouts, verdicts, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptdit.worlds import judges, shapes_image, shapes_multiview, shapes_video
from ptdit.worlds.judges import JudgeResult, heldout_prompts, judge, parse_prompt, validate_judges

WORLDS = ("shapes-image", "shapes-video", "shapes-multiview")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("world", WORLDS)
@pytest.mark.parametrize("noise, blur", [(0.0, False), (0.1, True)])
def test_judges_pass_ground_truth_and_fail_mismatches(world, noise, blur):
    r = validate_judges(world, n=200, seed=11, noise=noise, blur=blur, verbose=False)
    assert r["pass_rate"] >= 0.99, r["examples_of_errors"]
    assert r["fail_rate"] >= 0.99, r["examples_of_errors"]
    expected = {
        "shapes-image": {"color", "shape", "relation", "count", "size"},
        "shapes-video": {"color", "shape", "motion", "count", "size"},
        "shapes-multiview": {"object", "colors", "consistency"},
    }[world]
    assert set(r["fail_rate_by_attribute"]) == expected  # every kind of mismatch was tried


def _image(prompt_objects, relation):
    spec = {
        "world": "shapes-image",
        "height": 32,
        "width": 32,
        "relation": relation,
        "objects": prompt_objects,
    }
    return shapes_image.render(spec)


def test_image_verdicts_per_criterion():
    objects = [
        {"shape": "circle", "color": "red", "size": "small", "extent": 7.04, "x": 7.0, "y": 15.0},
        {"shape": "square", "color": "blue", "size": "large", "extent": 12.8, "x": 22.0, "y": 17.0},
    ]
    x = _image(objects, "left")
    good = judge("shapes-image", x, "a small red circle to the left of a large blue square")
    assert good.ok and good.criteria == {
        "count": True,
        "color": True,
        "shape": True,
        "size": True,
        "relation": True,
    }
    assert judge("shapes-image", x, "a blue square with a red circle on its left").ok
    bad = judge("shapes-image", x, "a red circle to the right of a blue square")
    assert (
        not bad.ok and bad.criteria["relation"] is False and bad.criteria["color"] and bad.criteria["shape"]
    )
    assert judge("shapes-image", x, "a red triangle left of a blue square").criteria["shape"] is False
    assert judge("shapes-image", x, "a green circle left of a blue square").criteria["color"] is False
    assert judge("shapes-image", x, "a large red circle left of a blue square").criteria["size"] is False
    one = judge("shapes-image", x, "a red circle")
    assert one.criteria["count"] is False and one.criteria["relation"] is None
    # the scene spec itself can be the prompt
    assert judge("shapes-image", x, {"world": "shapes-image", "objects": objects, "relation": "left"}).ok


def test_judges_accept_every_documented_layout():
    objects = [
        {"shape": "triangle", "color": "yellow", "size": "medium", "extent": 9.92, "x": 16.0, "y": 16.0}
    ]
    x = _image(objects, None)  # (3, 1, H, W) float in [-1, 1]
    u8 = np.round((x[:, 0] + 1) * 127.5).astype(np.uint8)  # (3, H, W)
    for sample in (x, x[:, 0], torch.from_numpy(x[:, 0]), u8, u8.transpose(1, 2, 0), torch.from_numpy(u8)):
        assert judge("shapes-image", sample, "a yellow triangle").ok
    with pytest.raises(ValueError, match="shape"):
        judge("shapes-image", np.zeros((4, 32, 32), np.float32), "a yellow triangle")
    with pytest.raises(ValueError, match="dtype"):
        judge("shapes-image", np.zeros((3, 32, 32), np.int64), "a yellow triangle")
    with pytest.raises(ValueError, match="8 frames"):
        judge("shapes-multiview", np.zeros((3, 4, 32, 32), np.float32), "a yellow cube")
    with pytest.raises(ValueError, match="cannot express"):
        judge("shapes-image", x, "a yellow cube")
    with pytest.raises(ValueError, match="unknown world"):
        parse_prompt("shapes-audio", "a beep")


def test_video_judge_needs_motion_and_uint8_works():
    spec, cap = shapes_video.make_dataset(length=4, seed=5).spec_and_caption(0)
    clip = shapes_video.render(spec)  # (3, F, H, W)
    u8 = torch.from_numpy(np.round((clip + 1) * 127.5).astype(np.uint8))
    assert judge("shapes-video", u8, cap).ok
    frozen = np.repeat(clip[:, :1], clip.shape[1], axis=1)  # the first frame held: nothing moves
    r = judge("shapes-video", frozen, cap)
    assert r.criteria["motion"] is False and not r.ok
    reversed_ = judge("shapes-video", clip[:, ::-1].copy(), cap)
    assert reversed_.criteria["motion"] is False


def test_multiview_judge_checks_object_colours_and_consistency():
    spec = shapes_multiview.sample_scene(np.random.default_rng(0))
    spec.update(object="pyramid", colors=["green", "magenta"])
    views = shapes_multiview.render(spec)
    assert judge("shapes-multiview", views, "a pyramid with magenta and green faces").ok
    assert judge("shapes-multiview", views, "a cube with magenta and green faces").criteria["object"] is False
    assert judge("shapes-multiview", views, "a green pyramid").criteria["colors"] is False
    mixed = views.copy()
    mixed[:, 3] = shapes_multiview.render(dict(spec, object="cube"))[:, 3]  # one view of another object
    r = judge("shapes-multiview", mixed, "a pyramid with magenta and green faces")
    assert r.criteria["consistency"] is False and not r.ok
    rolled = np.roll(views, 1, axis=1)  # every view one step off its azimuth
    assert (
        judge("shapes-multiview", rolled, "a pyramid with magenta and green faces").criteria["consistency"]
        is False
    )


@pytest.mark.parametrize("world", WORLDS)
def test_blank_samples_fail(world):
    frames = {"shapes-image": 1, "shapes-video": 8, "shapes-multiview": 8}[world]
    prompt = heldout_prompts(world, 1, seed=0)[0][0]
    assert not judge(world, -np.ones((3, frames, 32, 32), np.float32), prompt).ok


def test_result_semantics():
    assert JudgeResult({"a": True, "b": None}).ok and not JudgeResult({"a": True, "b": False}).ok
    assert JudgeResult({"a": True}).as_dict() == {"ok": True, "a": True}


@pytest.mark.parametrize("world", WORLDS)
def test_heldout_prompts_are_deterministic_heldout_and_parse(world):
    mod = judges.world_module(world)
    prompts = heldout_prompts(world, 12, seed=3)
    assert len(prompts) == 12 and prompts == heldout_prompts(world, 12, seed=3)
    assert prompts != heldout_prompts(world, 12, seed=4)
    for prompt, spec in prompts:
        assert parse_prompt(world, prompt) == spec and mod.heldout_compositions(spec)


def test_cli_prints_a_table(capsys):
    assert judges.cli_main(["--world", "shapes-image", "--n", "20"]) == 0
    out = capsys.readouterr().out
    assert "gt pass" in out and "shapes-image" in out and "noise 0.1+blur" in out
    with pytest.raises(ValueError, match="--n"):
        judges.cli_main(["--n", "0"])


def test_a_blob_that_is_no_shape_is_not_a_square():
    x = -np.ones((3, 32, 32), np.float32)
    x[0, 15:17, 4:28] = 1.0  # a thin red bar
    r = judge("shapes-image", x, "a red square")
    assert r.criteria["color"] and r.criteria["count"] and r.criteria["shape"] is False
