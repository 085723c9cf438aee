"""Fashion-MNIST world: idx reader, captioned dataset, prompt parser, bundled classifier and FID."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.linalg
import torch
from safetensors import safe_open
from torch import nn

from ptdit.worlds import fashion_mnist as fm
from ptdit.worlds import fmnist_nets as nets

needs_data = pytest.mark.skipif(
    not fm.dataset_available(),
    reason=f"Fashion-MNIST files not in {fm.DEFAULT_ROOT}: `apt-get install dataset-fashion-mnist`",
)


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------------------------------------
# reader and dataset
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip_raw_and_gz(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 7, 1], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    for prefix in ("train", "t10k"):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    assert fm.dataset_available(tmp_path)
    x, y = fm.load_split("test", tmp_path)
    assert x.dtype == torch.uint8 and x.shape == (5, 28, 28) and torch.equal(x, torch.from_numpy(images))
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()
    item = fm.FashionMNIST("train", size=28, root=tmp_path)[1]
    assert item["pixels"].shape == (1, 1, 28, 28) and item["label"] == 9
    assert torch.allclose(item["pixels"][0, 0], torch.from_numpy(images[1]).float() / 127.5 - 1)


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="magic"):
        fm.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))
    with pytest.raises(ValueError, match="header says shape"):
        fm.read_idx(tmp_path / "short")


def test_missing_files_name_the_install_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fm.load_split("train", tmp_path)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fm.FashionMNIST("test", root=tmp_path / "nowhere")
    assert not fm.dataset_available(tmp_path)
    with pytest.raises(ValueError, match="split"):
        fm.load_split("val", tmp_path)


@needs_data
@pytest.mark.parametrize("size", [28, 32])
def test_dataset_items_follow_the_contract(size):
    train, test = fm.FashionMNIST("train", size=size), fm.FashionMNIST("test", size=size)
    assert (len(train), len(test)) == (60000, 10000)
    for i in (0, 1, 5, -1):
        item = test[i]
        x = item["pixels"]
        assert x.dtype == torch.float32 and x.shape == (1, 1, size, size) == (1, *test.bucket_of(i))
        assert x.min() >= -1 and x.max() <= 1 and x.max() > 0
        assert isinstance(item["caption"], str) and isinstance(item["label"], int)
        assert fm.parse_prompt(item["caption"]) == item["label"]
    if size == 32:  # black padding of 2 pixels on every side
        x = test[0]["pixels"][0, 0]
        assert torch.all(x[:2] == -1) and torch.all(x[-2:] == -1) and torch.all(x[:, :2] == -1)
    images, labels = fm.load_split("train")
    assert images.dtype == torch.uint8 and int(images.max()) == 255 and int(images.min()) == 0
    assert torch.bincount(labels).tolist() == [6000] * 10  # the balanced train split
    assert len({test[i]["caption"] for i in range(50)}) > 10  # templates vary across items
    with pytest.raises(ValueError, match="size"):
        fm.FashionMNIST("test", size=30)


# ---------------------------------------------------------------------------------------------------------
# captions and prompts
# ---------------------------------------------------------------------------------------------------------


def test_caption_round_trip_and_prompt_parser():
    for label in range(10):
        for template in range(len(fm.TEMPLATES)):
            assert fm.parse_prompt(fm.caption(label, template)) == label
    prompts = fm.class_prompts()
    assert (
        len(prompts) == 10
        and prompts[7] == "a photo of a sneaker"
        and prompts[9] == "a photo of an ankle boot"
    )
    assert [fm.parse_prompt(p) for p in prompts] == list(range(10))
    assert fm.parse_prompt("A T-Shirt") == 0 and fm.parse_prompt("a shirt") == 6
    assert fm.parse_prompt("Ankle Boots, studio") == 9 and fm.parse_prompt("an ankle boot") == 9
    assert fm.parse_prompt("grey trousers") == 1 and fm.parse_prompt("a handbag") == 8
    with pytest.raises(ValueError, match="names no Fashion-MNIST class"):
        fm.parse_prompt("a cat")
    with pytest.raises(ValueError, match="several"):
        fm.parse_prompt("a shirt and a bag")
    with pytest.raises(ValueError, match="label"):
        fm.caption(10)


# ---------------------------------------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------------------------------------


class _Identity(nn.Module):
    """Feature 'extractor' that returns its (N, d) input: FID of the raw vectors."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _samples_with_exact_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    """n samples whose sample mean and unbiased sample covariance equal `mean` and `cov` exactly."""
    z = np.random.default_rng(seed).standard_normal((n, mean.shape[0]))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whitened: sample cov = I
    return torch.from_numpy(z @ np.linalg.cholesky(cov).T + mean)


def test_fid_matches_closed_form_on_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    a, b = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    s1, s2 = a @ a.T + 0.5 * np.eye(d), b @ b.T + 0.5 * np.eye(d)  # non-commuting covariances
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    x1, x2 = _samples_with_exact_moments(400, mu1, s1, 1), _samples_with_exact_moments(300, mu2, s2, 2)
    got = nets.fid(x1, x2, feature=_Identity(d))
    assert got == pytest.approx(expected, rel=1e-6)
    # diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2, no matrix root at all
    va, vb = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    m1, m2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    x1 = _samples_with_exact_moments(200, m1, np.diag(va), 3)
    x2 = _samples_with_exact_moments(200, m2, np.diag(vb), 4)
    assert nets.fid(x1, x2, feature=_Identity(3)) == pytest.approx(5.0 + 1.0 + 1.0 + 4.0, rel=1e-6)
    assert nets.fid(x1, x1, feature=_Identity(3)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        nets.fid(x1[:1], x2, feature=_Identity(3))


def test_feature_module_is_accepted_by_torchmetrics_and_stays_in_eval_mode():
    from torchmetrics.image.fid import FrechetInceptionDistance

    torch.manual_seed(0)
    feature = nets.FMNISTFeatures(nets.FMNISTClassifier())
    metric = FrechetInceptionDistance(feature=feature)
    metric.train()
    assert not feature.training and not feature.classifier.training
    assert not any(p.requires_grad for p in feature.parameters())
    x28 = torch.rand(4, 1, 28, 28) * 2 - 1
    assert feature(x28).shape == (4, feature.num_features) == (4, 128)
    padded = torch.nn.functional.pad(x28, (2, 2, 2, 2), value=-1.0)
    assert torch.equal(feature(x28), feature(padded))  # 28 px is padded to 32 like the dataset
    as_uint8 = ((padded + 1) * 127.5).round().to(torch.uint8)
    assert torch.allclose(feature(as_uint8), feature(as_uint8.float() / 127.5 - 1))
    assert torch.allclose(feature(padded[:, :, None]), feature(padded))  # (N, C, F=1, H, W)
    with pytest.raises(ValueError, match="H = W = 28 or 32"):
        feature(torch.zeros(2, 1, 30, 30))


# ---------------------------------------------------------------------------------------------------------
# the bundled classifier
# ---------------------------------------------------------------------------------------------------------


def test_bundled_weights_are_small_and_load():
    assert nets.DEFAULT_WEIGHTS.is_file(), "run `python -m ptdit.worlds.fmnist_nets train`"
    assert nets.DEFAULT_WEIGHTS.stat().st_size < 2 * 2**20
    model = nets.load_fmnist_classifier()
    assert not model.training and model.num_features == 128


def test_missing_or_bad_weights_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="fmnist_nets train"):
        nets.load_fmnist_classifier(tmp_path / "none.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(ValueError, match="safetensors"):
        nets.load_fmnist_classifier(tmp_path / "bad.safetensors")


@pytest.fixture(scope="module")
def test_pixels():
    images, labels = fm.load_split("test")
    return fm.to_pixels(images[:2000], 32)[:, None], labels[:2000]  # (2000, 1, 32, 32), (2000,)


@needs_data
def test_bundled_classifier_accuracy_at_least_90_percent(test_pixels):
    x, y = test_pixels
    acc = nets.classifier_accuracy(x, y)
    assert acc >= 0.90, acc
    assert nets.classifier_accuracy(x[:, :, 2:-2, 2:-2], y) == acc  # 28 px gives the same answers
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    assert nets.classifier_accuracy(x, shuffled) < 0.2  # wrong labels are caught
    with pytest.raises(ValueError, match="labels"):
        nets.classifier_accuracy(x, y[:10])


@needs_data
def test_fid_real_vs_real_small_and_real_vs_noise_large(test_pixels):
    x, _ = test_pixels
    real_real = nets.fid(x[:1000], x[1000:])
    noise = torch.rand(1000, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real_noise = nets.fid(x[:1000], noise)
    assert real_noise > 20 * real_real, (real_real, real_noise)
    blurred = torch.nn.functional.avg_pool2d(x[1000:], 3, stride=1, padding=1)
    assert real_real < nets.fid(x[:1000], blurred) < real_noise  # a milder corruption lands in between


@needs_data
def test_training_is_deterministic_and_writes_loadable_weights(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.safetensors"
        result = nets.train_fmnist_nets(out, epochs=1, batch_size=32, train_limit=384, log=lambda _: None)
        with safe_open(str(out), framework="pt") as f:
            runs.append((f.metadata(), {k: f.get_tensor(k) for k in f.keys()}))
        assert result["test_accuracy"] >= 0.3 and result["train_seconds"] > 0
    (meta_a, weights_a), (meta_b, weights_b) = runs
    assert meta_a == meta_b and meta_a["train_images"] == "384"
    assert weights_a.keys() == weights_b.keys()
    # same seed, same weights bit for bit
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    model = nets.load_fmnist_classifier(tmp_path / "a.safetensors")
    assert not model.training and model.num_features == 128
    with pytest.raises(ValueError, match="batch_size"):
        nets.train_fmnist_nets(tmp_path / "c.safetensors", batch_size=512, train_limit=384)
    assert not (tmp_path / "c.safetensors").exists()
