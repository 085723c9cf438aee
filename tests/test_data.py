"""Folder datasets, aspect buckets, the bucket batch sampler and the latent cache, on tiny files in tmp_path."""

from __future__ import annotations

import json
import math
import os

import imageio
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from ptdit.data import (
    BucketBatchSampler,
    BucketSet,
    ImageFolderDataset,
    LatentCache,
    MultiViewFolderDataset,
    VideoFolderDataset,
    natural_key,
    nearest_bucket,
    size_multiple,
)


# ---------------------------------------------------------------------------------------------- helpers
def write_image(path, height, width, color=(255, 0, 0), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), color).save(path, format=fmt)


def write_caption(path, text):
    path.with_suffix(".txt").write_text(text)


def stripes(height, width):
    """An RGB image whose left, middle and right thirds are red, green and blue."""
    a = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    a[:, :third, 0] = 255
    a[:, third : 2 * third, 1] = 255
    a[:, 2 * third :, 2] = 255
    return Image.fromarray(a)


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    write_image(root / "a.png", 32, 48, (255, 0, 0))
    write_caption(root / "a.png", "a red picture\n")
    write_image(root / "b.jpg", 64, 32, (0, 0, 255), fmt="JPEG")
    write_caption(root / "b.jpg", "a blue picture")
    write_image(root / "sub" / "c.webp", 40, 40, (0, 255, 0), fmt="WEBP")
    write_caption(root / "sub" / "c.webp", "a green picture")
    write_image(root / "d.png", 16, 16)  # no caption
    write_image(root / ".hidden" / "e.png", 16, 16)  # hidden folders are ignored
    return root


def add_corrupt_files(root):
    rng = np.random.default_rng(0)
    (root / "bad.png").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    write_caption(root / "bad.png", "random bytes")
    write_image(root / "full.png", 64, 64, (9, 9, 9))
    data = (root / "full.png").read_bytes()
    (root / "full.png").unlink()
    noisy = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    noisy.save(root / "trunc.png")
    data = (root / "trunc.png").read_bytes()
    (root / "trunc.png").write_bytes(data[: len(data) // 2])  # valid header, cut-off pixel data
    write_caption(root / "trunc.png", "truncated")


# ---------------------------------------------------------------------------------------------- images
def test_image_folder_pairs_captions_and_skips_uncaptioned(image_folder):
    ds = ImageFolderDataset(image_folder, size=16)
    assert len(ds) == 3
    captions = {s.name: s.caption for s in ds.samples}
    assert captions == {"a.png": "a red picture", "b.jpg": "a blue picture", "sub/c.webp": "a green picture"}
    assert ds.skipped == 1 and "no caption" in ds.skip_reasons["d.png"]
    for i in range(len(ds)):
        item = ds[i]
        assert item["pixels"].shape == (3, 1, 16, 16) and item["pixels"].dtype == torch.float32
        assert item["pixels"].min() >= -1 and item["pixels"].max() <= 1
        assert ds.bucket_of(i) == (1, 16, 16)
    red = ds[[s.name for s in ds.samples].index("a.png")]["pixels"]
    torch.testing.assert_close(red[:, 0, 0, 0], torch.tensor([1.0, -1.0, -1.0]))


def test_missing_caption_policies(image_folder):
    empty = ImageFolderDataset(image_folder, size=8, missing_caption="empty")
    assert len(empty) == 4 and empty.skipped == 0
    assert {s.name: s.caption for s in empty.samples}["d.png"] == ""
    with pytest.raises(ValueError, match=r"have no caption: d\.png"):
        ImageFolderDataset(image_folder, size=8, missing_caption="error")
    with pytest.raises(ValueError, match="missing_caption"):
        ImageFolderDataset(image_folder, size=8, missing_caption="maybe")


def test_metadata_jsonl_captions(tmp_path):
    root = tmp_path / "meta"
    write_image(root / "x.png", 20, 20)
    write_image(root / "imgs" / "y.jpg", 20, 30, fmt="JPEG")
    write_caption(root / "x.png", "side-car caption loses to metadata")
    rows = [
        {"file_name": "x.png", "text": "caption of x"},
        {"file_name": "./imgs/y.jpg", "text": "caption of y", "other": 1},
        {"file_name": "gone.png", "text": "no such file"},
    ]
    (root / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = ImageFolderDataset(root, size=8)
    assert {s.name: s.caption for s in ds.samples} == {"x.png": "caption of x", "imgs/y.jpg": "caption of y"}
    assert ds.skipped == 1 and "listed in metadata.jsonl but no such" in ds.skip_reasons["gone.png"]
    (root / "metadata.jsonl").write_text('{"file_name": "x.png", "text": "ok"}\n{not json\n')
    with pytest.raises(ValueError, match="line 2"):
        ImageFolderDataset(root, size=8)
    (root / "metadata.jsonl").write_text('{"file_name": "x.png", "caption": "other column"}\n')
    with pytest.raises(ValueError, match="'text'"):
        ImageFolderDataset(root, size=8)
    assert ImageFolderDataset(root, size=8, caption_column="caption").samples[0].caption == "other column"


def test_center_crop_stretch_and_grayscale(tmp_path):
    root = tmp_path / "crop"
    root.mkdir()
    stripes(16, 48).save(root / "s.png")
    write_caption(root / "s.png", "stripes")
    crop = ImageFolderDataset(root, size=16)[0]["pixels"][:, 0]  # (3, 16, 16): the green middle third
    torch.testing.assert_close(crop.mean(dim=(1, 2)), torch.tensor([-1.0, 1.0, -1.0]), atol=0.05, rtol=0)
    stretch = ImageFolderDataset(root, size=(8, 24), fit="stretch")[0]["pixels"][:, 0]
    assert stretch.shape == (3, 8, 24)
    assert stretch[0, :, 2].mean() > 0.9 and stretch[2, :, -2].mean() > 0.9  # red left, blue right kept
    gray = ImageFolderDataset(root, size=16, grayscale=True)[0]["pixels"]
    assert gray.shape == (1, 1, 16, 16)


def test_size_or_buckets_required(image_folder):
    with pytest.raises(ValueError, match="exactly one of size"):
        ImageFolderDataset(image_folder)
    with pytest.raises(ValueError, match="exactly one of size"):
        ImageFolderDataset(image_folder, size=16, buckets=[(16, 16)])
    with pytest.raises(ValueError, match="size must be"):
        ImageFolderDataset(image_folder, size=(16, -1))


def test_corrupt_and_truncated_images_are_skipped_not_fatal(image_folder, caplog):
    add_corrupt_files(image_folder)
    ds = ImageFolderDataset(image_folder, size=16)  # fixed size: no header read, failures show up at load
    names = [s.name for s in ds.samples]
    assert "bad.png" in names and "trunc.png" in names and ds.skipped == 1  # only d.png so far
    with caplog.at_level("WARNING", logger="ptdit.data.folders"):
        items = [ds[i] for i in range(len(ds))]
    assert all(item["pixels"].shape == (3, 1, 16, 16) for item in items)
    assert ds.skipped == 3 and {"bad.png", "trunc.png"} <= set(ds.skip_reasons)
    assert "trunc" not in [it["caption"] for it in items] and "random bytes" not in [
        it["caption"] for it in items
    ]
    assert sum("skipping bad.png" in r.getMessage() for r in caplog.records) == 1
    # the replacement is deterministic: the next readable item of the same bucket
    bad = names.index("bad.png")
    again = ds[bad]
    torch.testing.assert_close(again["pixels"], items[bad]["pixels"])
    assert again["caption"] == items[bad]["caption"] and ds.skipped == 3  # not counted twice
    # a whole epoch through a DataLoader does not crash
    batches = list(DataLoader(ds, batch_size=2, shuffle=False))
    assert sum(len(b["caption"]) for b in batches) == len(ds)

    bucketed = ImageFolderDataset(image_folder, buckets=BucketSet.pixart(32, 16))
    assert "unreadable image header" in bucketed.skip_reasons["bad.png"]  # header checked at scan here
    for i in range(len(bucketed)):
        assert bucketed[i]["pixels"].shape[1:] == bucketed.bucket_of(i)
    assert "trunc.png" in bucketed.skip_reasons


def test_every_item_unreadable_gives_clear_error(tmp_path):
    root = tmp_path / "allbad"
    root.mkdir()
    (root / "z.png").write_bytes(b"not a png at all")
    write_caption(root / "z.png", "z")
    ds = ImageFolderDataset(root, size=8)
    with pytest.raises(ValueError, match="failed to load"):
        ds[0]


def test_missing_and_empty_folders_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*\*\.png"):
        ImageFolderDataset(tmp_path / "nope", size=8)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        ImageFolderDataset(tmp_path / "file", size=8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no usable images in .*empty \(found none\); expected \*\.png"):
        ImageFolderDataset(tmp_path / "empty", size=8)
    write_image(tmp_path / "nocap" / "a.png", 8, 8)
    with pytest.raises(ValueError, match="all left out: a.png: no caption"):
        ImageFolderDataset(tmp_path / "nocap", size=8)
    with pytest.raises(ValueError, match=r"no usable videos .*\*\.mp4"):
        VideoFolderDataset(tmp_path / "empty", num_frames=2)
    with pytest.raises(ValueError, match="no usable object folders"):
        MultiViewFolderDataset(tmp_path / "empty", num_views=2)


def test_empty_file_rejected_at_scan(image_folder):
    (image_folder / "zero.png").write_bytes(b"")
    write_caption(image_folder / "zero.png", "zero")
    ds = ImageFolderDataset(image_folder, size=8)
    assert ds.skip_reasons["zero.png"] == "empty file" and "zero.png" not in [s.name for s in ds.samples]


# ---------------------------------------------------------------------------------------------- buckets
def test_pixart_buckets_and_nearest():
    buckets = BucketSet.pixart(256, multiple=32, max_aspect=4.0)
    assert (256, 256) in buckets.sizes and len(buckets) > 10
    for h, w in buckets:
        assert h % 32 == 0 and w % 32 == 0
        assert max(h / w, w / h) <= 4.0 + 1e-9
        assert abs(h * w / 256**2 - 1) < 0.25
    assert buckets.nearest_bucket(1000, 1000) == (256, 256)
    tall = buckets.nearest_bucket(4000, 1000)
    assert tall[0] > tall[1] and tall == nearest_bucket(4000, 1000, buckets)
    h, w = buckets.nearest_bucket(480, 640)
    best = min(abs(math.log(a / b) - math.log(480 / 640)) for a, b in buckets)
    assert abs(math.log(h / w) - math.log(480 / 640)) == pytest.approx(best)
    assert size_multiple(8, 2, (1, 8, 8)) == (128, 128)
    big = BucketSet.pixart(1024, multiple=size_multiple(8, 2, (1, 8, 8)))
    assert all(h % 128 == 0 and w % 128 == 0 for h, w in big)
    with pytest.raises(ValueError, match="multiple"):
        BucketSet.pixart(256, multiple=0)
    with pytest.raises(ValueError, match="positive"):
        BucketSet([])


def test_image_dataset_assigns_buckets(tmp_path):
    root = tmp_path / "ar"
    for name, (h, w) in {"wide": (30, 90), "tall": (90, 30), "square": (50, 50), "wide2": (40, 110)}.items():
        write_image(root / f"{name}.png", h, w)
        write_caption(root / f"{name}.png", name)
    buckets = BucketSet.pixart(32, multiple=8)
    ds = ImageFolderDataset(root, buckets=buckets)
    by_name = {s.name: ds.bucket_of(i) for i, s in enumerate(ds.samples)}
    assert by_name["square.png"] == (1, 32, 32)
    assert by_name["wide.png"][2] > by_name["wide.png"][1] and by_name["tall.png"][1] > by_name["tall.png"][2]
    assert by_name["wide.png"] == (1, *buckets.nearest_bucket(30, 90))
    for i in range(len(ds)):
        assert ds[i]["pixels"].shape[1:] == ds.bucket_of(i)
    assert sum(ds.buckets().values()) == len(ds)
    from_dict = ImageFolderDataset(
        root, buckets={"base_size": 32, "multiple": 8}
    )  # as a YAML config gives it
    assert [from_dict.bucket_of(i) for i in range(len(ds))] == [ds.bucket_of(i) for i in range(len(ds))]
    with pytest.raises(ValueError, match="base_size"):
        ImageFolderDataset(root, buckets={"multiple": 8})


class FakeBuckets:
    """len() items whose bucket is index % 3 (sizes 7, 11 and 12 items for n=30: uneven on purpose)."""

    def __init__(self, sizes=(7, 11, 12)):
        self.buckets = [b for b, n in enumerate(sizes) for _ in range(n)]

    def __len__(self):
        return len(self.buckets)

    def bucket_of(self, index):
        return (1, 8 * (self.buckets[index] + 1), 8)


def test_bucket_sampler_one_bucket_per_batch_every_index_once():
    ds = FakeBuckets()
    sampler = BucketBatchSampler(ds, batch_size=4, seed=3, drop_last=False)
    batches = list(sampler)
    assert len(batches) == len(sampler) == sampler.batches_per_epoch() == 2 + 3 + 3
    assert all(len({ds.bucket_of(i) for i in b}) == 1 for b in batches)
    assert sorted(i for b in batches for i in b) == list(range(len(ds)))
    full = BucketBatchSampler(ds, batch_size=4, seed=3, drop_last=True)
    assert all(len(b) == 4 for b in full) and len(list(full)) == 1 + 2 + 3
    with pytest.raises(ValueError, match="no bucket holds"):
        BucketBatchSampler(ds, batch_size=20)


def test_bucket_sampler_deterministic_per_seed_and_epoch():
    ds = FakeBuckets()
    a, b = BucketBatchSampler(ds, 4, seed=1), BucketBatchSampler(ds, 4, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(BucketBatchSampler(ds, 4, seed=2)) != first


def test_bucket_sampler_rank_sharding():
    ds = FakeBuckets((13, 17, 22))
    for drop_last in (True, False):
        shards = [
            list(BucketBatchSampler(ds, 3, seed=5, drop_last=drop_last, rank=r, world_size=2)) for r in (0, 1)
        ]
        assert len(shards[0]) == len(shards[1]) > 0  # same number of steps on every rank
        for b0, b1 in zip(*shards):
            assert len(b0) == len(b1)
            assert ds.bucket_of(b0[0]) == ds.bucket_of(b1[0])  # the same size on both ranks in each step
        if drop_last:
            seen0 = {i for b in shards[0] for i in b}
            seen1 = {i for b in shards[1] for i in b}
            assert not seen0 & seen1  # disjoint
            assert all(len(b) == 3 for s in shards for b in s)
        else:
            assert {i for s in shards for b in s for i in b} == set(range(len(ds)))  # every index covered
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler(ds, 3, rank=2, world_size=2)


def test_bucket_sampler_skip_ahead_equals_continuing():
    ds = FakeBuckets()
    for rank in (0, 1):
        sampler = BucketBatchSampler(ds, 2, seed=7, rank=rank, world_size=2)
        sampler.set_epoch(4)
        whole = list(sampler)
        for k in (0, 1, 3, len(whole)):
            resumed = BucketBatchSampler(ds, 2, seed=7, rank=rank, world_size=2)
            resumed.set_epoch(4, start_batch=k)
            assert len(resumed) == len(whole) - k
            assert list(resumed) == whole[k:]
        with pytest.raises(ValueError, match="start_batch"):
            sampler.set_epoch(4, start_batch=len(whole) + 1)


def test_bucket_sampler_with_dataloader(tmp_path):
    root = tmp_path / "dl"
    for k, (h, w) in enumerate([(20, 40), (40, 20), (24, 48), (48, 24), (30, 60), (32, 32)]):
        write_image(root / f"{k}.png", h, w, (40 * k, 0, 0))
        write_caption(root / f"{k}.png", f"image {k}")
    ds = ImageFolderDataset(root, buckets=BucketSet.pixart(32, multiple=8, max_aspect=2.0))
    loader = DataLoader(ds, batch_sampler=BucketBatchSampler(ds, batch_size=2, seed=0, drop_last=False))
    seen = 0
    for batch in loader:
        assert batch["pixels"].dim() == 5 and batch["pixels"].shape[:3] == (len(batch["caption"]), 3, 1)
        seen += len(batch["caption"])
    assert seen == len(ds)


# ---------------------------------------------------------------------------------------------- video
def gray_frames(n, height=32, width=48, step=20):
    return [np.full((height, width, 3), min(255, 10 + step * k), np.uint8) for k in range(n)]


@pytest.fixture
def video_folder(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    imageio.mimsave(root / "clip.gif", gray_frames(10), duration=0.1, loop=0)
    write_caption(root / "clip.gif", "a gif")
    imageio.mimsave(root / "movie.mp4", gray_frames(12, step=18), fps=8)
    write_caption(root / "movie.mp4", "an mp4")
    imageio.mimsave(root / "web.webm", gray_frames(8, step=25), fps=8, codec="libvpx-vp9")
    write_caption(root / "web.webm", "a webm")
    return root


def frame_levels(pixels):
    """Mean gray level (0..255) of each frame of (C, F, H, W) pixels."""
    return ((pixels + 1) * 127.5).mean(dim=(0, 2, 3))


def test_video_folder_strided_frames(video_folder):
    ds = VideoFolderDataset(video_folder, num_frames=4, frame_stride=2, size=16, sampling="first")
    assert [s.name for s in ds.samples] == ["clip.gif", "movie.mp4", "web.webm"]
    assert ds.bucket_of(0) == (4, 16, 16)
    gif, mp4, webm = ds[0], ds[1], ds[2]
    assert gif["caption"] == "a gif" and mp4["caption"] == "an mp4"
    assert gif["pixels"].shape == mp4["pixels"].shape == (3, 4, 16, 16)
    torch.testing.assert_close(
        frame_levels(gif["pixels"]), torch.tensor([10.0, 50, 90, 130]), atol=1.5, rtol=0
    )
    torch.testing.assert_close(frame_levels(mp4["pixels"]), torch.tensor([10.0, 46, 82, 118]), atol=4, rtol=0)
    torch.testing.assert_close(
        frame_levels(webm["pixels"]), torch.tensor([10.0, 60, 110, 160]), atol=4, rtol=0
    )
    assert ds.skipped == 0 and ds.looped == {}


def test_video_random_start_is_seeded(video_folder):
    def levels(seed, epoch):
        ds = VideoFolderDataset(video_folder, num_frames=3, frame_stride=1, size=8, seed=seed)
        ds.set_epoch(epoch)
        return [tuple(frame_levels(ds[i]["pixels"]).round().tolist()) for i in range(len(ds))]

    first = levels(0, 0)
    assert levels(0, 0) == first
    assert any(levels(0, e) != first for e in range(1, 6))
    for lv in first:  # consecutive frames: a window of the clip
        assert all(abs(b - a - lv[1] + lv[0]) < 5 for a, b in zip(lv[1:], lv[2:]))
    center = VideoFolderDataset(video_folder, num_frames=2, frame_stride=4, size=8, sampling="center")
    torch.testing.assert_close(frame_levels(center[0]["pixels"]), torch.tensor([50.0, 130]), atol=1.5, rtol=0)


def test_short_videos_loop_or_skip(tmp_path):
    root = tmp_path / "short"
    root.mkdir()
    imageio.mimsave(root / "a_short.gif", gray_frames(3), duration=0.1, loop=0)
    imageio.mimsave(root / "b_short.mp4", gray_frames(3), fps=8)
    imageio.mimsave(root / "c_long.gif", gray_frames(8), duration=0.1, loop=0)
    for name in ("a_short.gif", "b_short.mp4", "c_long.gif"):
        write_caption(root / name, name)
    loop = VideoFolderDataset(root, num_frames=4, frame_stride=2, size=8, sampling="first", short="loop")
    expected = torch.tensor([10.0, 50, 30, 10])  # source frames 0, 2, 4 % 3 = 1, 6 % 3 = 0
    torch.testing.assert_close(frame_levels(loop[0]["pixels"]), expected, atol=1.5, rtol=0)
    torch.testing.assert_close(frame_levels(loop[1]["pixels"]), expected, atol=4, rtol=0)
    assert loop.looped == {"a_short.gif": 3, "b_short.mp4": 3} and loop.skipped == 0

    skip = VideoFolderDataset(root, num_frames=4, frame_stride=2, size=8, sampling="first", short="skip")
    items = [skip[i] for i in range(len(skip))]
    assert all(it["caption"] == "c_long.gif" for it in items)
    assert skip.skipped == 2 and all(
        "VideoTooShort" in skip.skip_reasons[n] for n in ("a_short.gif", "b_short.mp4")
    )


def test_corrupt_video_is_skipped(video_folder):
    (video_folder / "broken.mp4").write_bytes(
        np.random.default_rng(1).integers(0, 256, 500, np.uint8).tobytes()
    )
    write_caption(video_folder / "broken.mp4", "broken")
    data = (video_folder / "movie.mp4").read_bytes()
    (video_folder / "cut.mp4").write_bytes(data[: len(data) // 3])
    write_caption(video_folder / "cut.mp4", "cut")
    ds = VideoFolderDataset(video_folder, num_frames=2, size=8, sampling="first")
    items = [ds[i] for i in range(len(ds))]
    assert all(it["pixels"].shape == (3, 2, 8, 8) for it in items)
    assert "broken.mp4" in ds.skip_reasons and "broken" not in [it["caption"] for it in items]


# ---------------------------------------------------------------------------------------------- multi-view
def test_natural_sort():
    names = ["view_10.png", "view_2.png", "view_1.png", "View_3.png"]
    assert sorted(names, key=natural_key) == ["view_1.png", "view_2.png", "View_3.png", "view_10.png"]


@pytest.fixture
def multiview_folder(tmp_path):
    root = tmp_path / "objects"
    for k in range(1, 13):  # view_k has gray level 10 * k
        write_image(root / "chair" / f"view_{k}.png", 12, 12, (10 * k,) * 3)
    (root / "chair" / "caption.txt").write_text("a chair")
    for k in range(4):
        write_image(root / "table" / f"{k:03d}.jpg", 20, 10, (60 * k,) * 3, fmt="JPEG")
    for k in range(2):
        write_image(root / "lamp" / f"v{k}.png", 12, 12)
    (root / "lamp" / "caption.txt").write_text("too few views")
    for k in range(4):
        write_image(root / "nocap" / f"v{k}.png", 12, 12)
    (root / "metadata.jsonl").write_text(json.dumps({"file_name": "table", "text": "a table"}) + "\n")
    return root


def test_multiview_folder(multiview_folder):
    ds = MultiViewFolderDataset(multiview_folder, num_views=4, size=8)
    assert [(s.name, s.caption) for s in ds.samples] == [("chair", "a chair"), ("table", "a table")]
    assert ds.skipped == 2 and "fewer than num_views" in ds.skip_reasons["lamp"]
    assert "no caption" in ds.skip_reasons["nocap"]
    chair = ds[0]["pixels"]
    assert chair.shape == (3, 4, 8, 8) and ds.bucket_of(0) == (4, 8, 8)
    torch.testing.assert_close(frame_levels(chair), torch.tensor([10.0, 40, 70, 100]), atol=0.6, rtol=0)
    first = MultiViewFolderDataset(multiview_folder, num_views=4, size=8, view_selection="first")
    torch.testing.assert_close(
        frame_levels(first[0]["pixels"]), torch.tensor([10.0, 20, 30, 40]), atol=0.6, rtol=0
    )
    torch.testing.assert_close(
        frame_levels(ds[1]["pixels"]), torch.tensor([0.0, 60, 120, 180]), atol=3, rtol=0
    )


def test_multiview_corrupt_view_skips_object(multiview_folder):
    (multiview_folder / "chair" / "view_5.png").write_bytes(b"\x89PNG garbage")
    ds = MultiViewFolderDataset(multiview_folder, num_views=4, size=8, view_selection="first")
    item = ds[0]  # chair is still selected (views 1-4) and fine
    assert item["caption"] == "a chair"
    ds_even = MultiViewFolderDataset(multiview_folder, num_views=12, size=8)
    assert "table" in ds_even.skip_reasons  # only 4 views
    with pytest.raises(ValueError, match="failed to load"):
        ds_even[0]  # the only 12-view object has a corrupt view


# ---------------------------------------------------------------------------------------------- latent cache
def test_latent_cache_roundtrip_and_invalidation(image_folder, tmp_path):
    torch.manual_seed(0)
    ds = ImageFolderDataset(image_folder, size=16)
    cache = LatentCache(tmp_path / "cache", autoencoder_id="identity")
    calls = []

    def encode(item):
        calls.append(item["caption"])
        return item["pixels"][:, :, ::2, ::2].clone()

    item = ds[0]
    key = cache.key(item["key"])
    first = cache.get_or_compute(key, lambda: encode(item))
    second = cache.get_or_compute(key, lambda: encode(item))
    torch.testing.assert_close(first, second)
    assert len(calls) == 1 and (cache.hits, cache.misses) == (1, 1) and key in cache
    assert ds.sample_key(0) == item["key"]
    assert LatentCache(tmp_path / "cache", "sd-vae:/x").key(item["key"]) != key  # autoencoder in the key
    assert cache.key(ImageFolderDataset(image_folder, size=8).sample_key(0)) != key  # bucket in the key
    assert cache.key(ImageFolderDataset(image_folder, size=16, grayscale=True).sample_key(0)) != key

    path = ds.samples[0].files[0]
    write_image(path, 32, 48, (0, 255, 0))  # rewrite the file: new size/mtime -> new key
    os.utime(path, ns=(1, 1))
    assert cache.key(ds.sample_key(0)) != key
    assert cache.key_for_file(path, (1, 16, 16)) != cache.key_for_file(path, (1, 8, 8))

    cache.path(key).write_bytes(b"corrupt")  # an unreadable entry is recomputed and rewritten
    third = cache.get_or_compute(key, lambda: encode(item))
    assert len(calls) == 2 and cache.get(key) is not None
    torch.testing.assert_close(third, first)

    pair = {"mean": torch.randn(2, 3), "logvar": torch.randn(2, 3)}
    cache.put("ab" * 32, pair)
    got = cache.get("ab" * 32)
    assert set(got) == {"mean", "logvar"} and torch.equal(got["mean"], pair["mean"])
    leftovers = [
        p for p in (tmp_path / "cache").rglob("*") if p.is_file() and not p.name.endswith(".safetensors")
    ]
    assert leftovers == []
    with pytest.raises(ValueError, match="autoencoder_id"):
        LatentCache(tmp_path / "c2", "")
