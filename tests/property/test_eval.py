"""Property tests of diffusion_lib.eval (metrics, fid, digits): bad and edge-case input gives a
correct result (checked against an independent computation) or one of the library's own errors."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from diffusion_lib import GaussianDiffusion, NoiseSchedule
from diffusion_lib.eval import digits as D
from diffusion_lib.eval import fid as F
from diffusion_lib.eval import metrics as M
from diffusion_lib.eval import memorisation as MEM

from ._harness import call as _call
from ._harness import must_refuse

finite = st.floats(-3, 3, allow_nan=False, width=32)
odd_numbers = st.sampled_from([float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 0.5, 2.5, True, "1", None])
sizes = st.one_of(st.integers(-2, 6), st.sampled_from([np.int64(3), np.int32(2), 2.0, True, "3", None]))


def _tensor(draw, shape, dtype=torch.float32, lo=-2.0, hi=2.0):
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)



def call(fn, *args, **kwargs):
    """The harness's call, counting in the statistics how many cases were answered and how many refused."""
    result, err = _call(fn, *args, **kwargs)
    event("answered (result checked)" if err is None else f"refused: {type(err).__name__}")
    return result, err

# ------------------------------------------------------------------------------------ metrics
@st.composite
def point_clouds(draw):
    n, m = draw(st.sampled_from([1, 2, 3, 4, 5, 0])), draw(st.sampled_from([1, 2, 3, 4, 5, 0]))
    d = draw(st.sampled_from([1, 2, 3, 0]))
    shape_x = draw(st.sampled_from([(n, d)] * 4 + [(n,), (n, d, 1)]))
    x = _tensor(draw, shape_x, draw(st.sampled_from([torch.float32, torch.float64, torch.float64, torch.int64, torch.bool])))
    y = _tensor(draw, (m, draw(st.sampled_from([d, d, d, d + 1]))), draw(st.sampled_from([torch.float32, torch.float64])))
    if draw(st.integers(0, 4)) == 0 and x.numel() and x.is_floating_point():
        x.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf")]))
    wrap = draw(st.sampled_from(["tensor", "tensor", "numpy", "list"]))
    if wrap == "numpy":
        x = x.numpy()
    elif wrap == "list":
        x = x.tolist()
    return x, y


def _brute_force_w2(x: np.ndarray, y: np.ndarray) -> float:
    return min(np.mean(np.sum((x - y[list(p)]) ** 2, axis=1)) for p in itertools.permutations(range(len(x))))


@given(point_clouds())
def test_wasserstein2_squared(clouds):
    x, y = clouds
    result, err = call(M.wasserstein2_squared, x, y)
    xa = np.asarray(x, dtype=np.float64) if not isinstance(x, list) else None
    if err is None:
        assert xa is not None and xa.ndim == 2 and xa.shape[1] == y.shape[1] and np.isfinite(xa).all()
        assert result >= 0
        if xa.shape[0] == y.shape[0]:
            assert result == pytest.approx(_brute_force_w2(xa, y.double().numpy()), rel=1e-6, abs=1e-9)


@given(st.lists(st.one_of(st.floats(allow_nan=True), odd_numbers), max_size=4))
def test_w2_estimate(values):
    result, err = call(M.W2Estimate, tuple(values))
    if err is None:
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in values)
        assert result.mean == pytest.approx(float(np.mean(values)))
        expected_sem = float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
        assert result.sem == pytest.approx(expected_sem)


def _gauss_reference(n, seed):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=30)
@given(st.data(), st.sampled_from([None, None, "n", "repeats", "seed", "reference"]))
def test_w2_floor_and_ceiling(data, bad):
    """One argument at a time is bad (or none): refused, or the first pair equals a direct computation."""
    n = data.draw(st.sampled_from([0, -1, 2.5, True, None]) if bad == "n" else st.sampled_from([1, 3, np.int64(4)]), label="n")
    repeats = data.draw(st.sampled_from([0, -2, 1.5, "2"]) if bad == "repeats" else st.sampled_from([1, 2, np.int64(2)]), label="repeats")
    seed = data.draw(st.sampled_from([-1, 0.5, None]) if bad == "seed" else st.sampled_from([0, 5, np.int64(7)]), label="seed")
    kind = data.draw(st.sampled_from(["short", "nan", "not callable", "3-D"]) if bad == "reference" else st.just("good"), label="reference")
    reference = {
        "good": _gauss_reference,
        "short": lambda n, s: _gauss_reference(n, s)[:-1],
        "nan": lambda n, s: torch.full((n, 2), float("nan")),
        "3-D": lambda n, s: torch.zeros(n, 2, 1),
        "not callable": 3,
    }[kind]
    for fn in (M.w2_floor, M.w2_gaussian_ceiling):
        result, err = call(fn, reference, n=n, repeats=repeats, seed=seed)
        if err is None:
            assert bad is None
            assert len(result.values) == int(repeats)
            k0 = (M.wasserstein2_squared(_gauss_reference(int(n), int(seed)), _gauss_reference(int(n), int(seed) + 1))
                  if fn is M.w2_floor else
                  M.wasserstein2_squared(torch.randn(int(n), 2, generator=torch.Generator().manual_seed(int(seed))),
                                         _gauss_reference(int(n), int(seed) + 1000)))
            assert result.values[0] == pytest.approx(k0, rel=1e-9, abs=1e-12)
        else:
            assert bad is not None


@settings(max_examples=30)
@given(st.integers(0, 7), sizes)
def test_w2_to_reference(num_samples, n):
    samples = _gauss_reference(num_samples, 99)
    result, err = call(M.w2_to_reference, samples, _gauss_reference, n=n, seed=0)
    if err is None:
        n = int(n)
        assert n >= 1 and num_samples >= n and len(result.values) == num_samples // n
        assert result.values[0] == pytest.approx(M.wasserstein2_squared(samples[:n], _gauss_reference(n, 0)), rel=1e-9, abs=1e-12)


@given(st.lists(st.floats(0, 2), min_size=1, max_size=3), st.lists(st.floats(0, 2), min_size=1, max_size=3))
def test_w2_ratio(a, b):
    score, floor = M.W2Estimate(tuple(a)), M.W2Estimate(tuple(b))
    result, err = call(M.w2_ratio, score, floor)
    if err is None:
        assert floor.mean > 0
        ratio = np.mean(a) / np.mean(b)
        rel_a = score.sem / score.mean if score.mean > 0 else 0.0
        assert result[0] == pytest.approx(ratio)
        assert result[1] == pytest.approx(ratio * math.sqrt(rel_a**2 + (floor.sem / floor.mean) ** 2))
    else:
        assert floor.mean == 0
    must_refuse(M.w2_ratio, a, floor)


# ------------------------------------------------------------------------------------ Fréchet
@st.composite
def gaussians(draw):
    d = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    def cov():
        a = _tensor(draw, (d, d), torch.float64)
        s = a @ a.T
        kind = draw(st.sampled_from(["psd", "psd", "rank1", "negative", "asym", "nan", "shape"]))
        if kind == "rank1":
            s = torch.outer(a[0], a[0])
        elif kind == "negative":
            s = s - (float(torch.linalg.eigvalsh(s)[-1]) * 0.5 + 0.1) * torch.eye(d, dtype=torch.float64)
            s = s - (float(torch.linalg.eigvalsh(s)[0]) > -0.05) * torch.eye(d, dtype=torch.float64)
        elif kind == "asym":
            s = s + torch.triu(torch.ones(d, d, dtype=torch.float64), 1) * 0.5
            if d == 1:
                s = torch.full((1, 1), float("nan"), dtype=torch.float64)
        elif kind == "nan":
            s = s.clone()
            s[0, 0] = float("nan")
        elif kind == "shape":
            s = torch.eye(d + 1, dtype=torch.float64)
        return s.to(dtype), kind
    s1, k1 = cov()
    s2, k2 = cov()
    m1, m2 = _tensor(draw, (d,), dtype), _tensor(draw, (draw(st.sampled_from([d, d, d + 1])),), dtype)
    return m1, s1, m2, s2, (k1, k2)


@given(gaussians(), st.booleans())
def test_frechet_distance(g, as_numpy):
    m1, s1, m2, s2, kinds = g
    args = [v.numpy() if as_numpy else v for v in (m1, s1, m2, s2)]
    result, err = call(F.frechet_distance, *args)
    if err is None:
        assert all(k in ("psd", "rank1") for k in kinds) and m1.shape == m2.shape
        a, b = s1.double().numpy(), s2.double().numpy()
        covmean = scipy.linalg.sqrtm(a @ b).real
        ref = float(((m1.double() - m2.double()) ** 2).sum()) + np.trace(a) + np.trace(b) - 2 * np.trace(covmean)
        assert result == pytest.approx(max(ref, 0.0), rel=1e-3, abs=1e-3)
    else:
        assert any(k in ("negative", "asym", "nan", "shape") for k in kinds) or m1.shape != m2.shape


@given(st.integers(0, 5), st.integers(0, 3), st.sampled_from(["ok", "nan", "1d", "bool", "numpy", "list"]))
def test_feature_statistics(n, d, kind):
    f = torch.randn(n, d, generator=torch.Generator().manual_seed(n * 7 + d), dtype=torch.float64)
    arg = {"ok": f, "nan": f.clone().fill_(float("nan")), "1d": f.flatten(), "bool": f > 0, "numpy": f.numpy(),
           "list": f.tolist()}[kind]
    result, err = call(F.feature_statistics, arg)
    if err is None:
        assert kind in ("ok", "numpy") and n >= 2 and d >= 1
        np.testing.assert_allclose(result[0].numpy(), f.numpy().mean(0), atol=1e-12)
        np.testing.assert_allclose(result[1].numpy(), np.cov(f.numpy(), rowvar=False).reshape(d, d), atol=1e-12)


@pytest.fixture(scope="module")
def small_classifier():
    torch.manual_seed(0)
    return F.DigitClassifier().eval()


@given(st.one_of(st.integers(-1, 12), st.just(np.int64(3)), odd_numbers), st.one_of(st.integers(-1, 8), st.just(np.int64(4)), odd_numbers),
       st.one_of(st.floats(-0.5, 1.5), st.floats(0, 0.9), odd_numbers))
def test_digit_classifier_constructor(num_classes, feature_dim, dropout):
    result, err = call(F.DigitClassifier, num_classes, feature_dim, dropout)
    if err is None:
        assert result.head.out_features == int(num_classes) >= 2 and result.fc.out_features == int(feature_dim) >= 1
        assert 0 <= float(dropout) < 1


@st.composite
def image_batches(draw):
    n = draw(st.integers(0, 4))
    shape = draw(st.sampled_from([(n, 1, 8, 8), (n, 1, 8, 8), (n, 8, 8), (n, 64), (n, 3, 8, 8), (n, 1, 7, 8)]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.int64]))
    scale = draw(st.sampled_from([1.0, 1.0, 1.1, 16.0]))
    x = _tensor(draw, shape, torch.float64, -scale, scale).to(dtype)
    if draw(st.integers(0, 5)) == 0 and x.numel() and x.is_floating_point():
        x.view(-1)[-1] = float("nan")
    return x


@given(image_batches())
def test_digit_classifier_forward(small_classifier, x):
    result, err = call(small_classifier, x)
    if err is None:
        assert x.is_floating_point() and x.ndim == 4 and tuple(x.shape[1:]) == (1, 8, 8)
        assert result.shape == (x.shape[0], 10) and result.dtype == torch.float32
        with torch.no_grad():
            # forward is the inner call of every loop: it checks shape and dtype (no device sync), so a
            # NaN pixel gives NaN logits, never a finite wrong answer; the public entry points refuse it
            torch.testing.assert_close(result, small_classifier.head(small_classifier._features(x.float())), equal_nan=True)


@given(image_batches(), st.sampled_from(["ok", "float", "short", "range", "2d"]), st.one_of(st.integers(-1, 3), st.just(np.int64(2))))
def test_classifier_accuracy(small_classifier, x, label_kind, batch_size):
    n = x.shape[0]
    labels = {"ok": torch.arange(n) % 10, "float": torch.zeros(n), "short": torch.zeros(max(n - 1, 0), dtype=torch.long),
              "range": torch.full((n,), 10), "2d": torch.zeros(n, 1, dtype=torch.long)}[label_kind]
    result, err = call(F.classifier_accuracy, small_classifier, x, labels, batch_size=batch_size)
    if err is None:
        assert label_kind == "ok" and n >= 1 and int(batch_size) >= 1
        with torch.no_grad():
            pred = small_classifier(x.reshape(n, 1, 8, 8).float()).argmax(1)
        assert result == pytest.approx(float((pred == labels).float().mean()))


@settings(max_examples=30)
@given(image_batches(), st.sampled_from(["images", "stats", "bad tuple"]))
def test_frechet_digit_distance(small_classifier, x, ref_kind):
    fd = F.FrechetDigitDistance(small_classifier)
    from diffusion_lib.data import load_digits_split, quantize_digits

    real = load_digits_split("val")[0][:6]
    ref = {"images": real, "stats": fd.statistics(real), "bad tuple": (real,)}[ref_kind]
    result, err = call(fd, x, ref)
    if err is None:
        assert ref_kind != "bad tuple" and x.is_floating_point() and x.shape[0] >= 2
        feats = lambda im: small_classifier._features(quantize_digits(im.reshape(-1, 1, 8, 8)).float()).double()  # noqa: E731
        with torch.no_grad():
            m1, s1 = feats(x).mean(0), torch.cov(feats(x).T)
            m2, s2 = feats(real).mean(0), torch.cov(feats(real).T)
        assert result == pytest.approx(F.frechet_distance(m1, s1, m2, s2), rel=1e-4, abs=1e-6)
    must_refuse(F.FrechetDigitDistance, classifier=lambda x: x)


@settings(max_examples=20)
@given(st.one_of(st.integers(-1, 8), odd_numbers), st.one_of(st.integers(-1, 3), st.just(np.int64(2))), st.integers(-1, 2))
def test_frechet_digit_distance_floor(small_classifier, n, repeats, seed):
    from diffusion_lib.data import load_digits_split

    fd = F.FrechetDigitDistance(small_classifier)
    real = load_digits_split("val")[0][:6]
    ref = fd.statistics(load_digits_split("test")[0][:8])
    result, err = call(fd.floor, n, ref, real=real, repeats=repeats, seed=seed)
    if err is None:
        assert 2 <= int(n) <= 6 and int(repeats) >= 1 and seed >= 0
        g = torch.Generator().manual_seed(seed)
        values = [fd(real[torch.randperm(6, generator=g)[: int(n)]], ref) for _ in range(int(repeats))]
        assert result[0] == pytest.approx(float(np.mean(values)))
        assert result[1] == pytest.approx(float(np.std(values, ddof=1)) if int(repeats) > 1 else 0.0, rel=1e-4, abs=1e-9)


# ------------------------------------------------------------------------------------ digits
@st.composite
def level_images(draw):
    n = draw(st.integers(0, 4))
    levels = torch.randint(0, 17, (n, 1, 2, 2), generator=torch.Generator().manual_seed(draw(st.integers(0, 999))))
    x = levels.double() / 8 - 1
    kind = draw(st.sampled_from(["ok", "ok", "off grid", "nan", "outside", "int", "flat"]))
    if n and kind == "off grid":
        x[0, 0, 0, 0] += 0.01
    elif n and kind == "nan":
        x[0, 0, 0, 0] = float("nan")
    elif n and kind == "outside":
        x[0, 0, 0, 0] = 1.125
    elif kind == "int":
        x = levels
    elif kind == "flat":
        x = x.flatten()
    return x, levels, kind if n or kind in ("int", "flat") else "ok"


@given(level_images(), level_images(), st.one_of(st.floats(-1, 3), odd_numbers))
def test_independent_pixel_nll(train, test, alpha):
    (tr, tr_lv, tr_kind), (te, te_lv, te_kind) = train, test
    result, err = call(D.independent_pixel_nll, tr, te, alpha=alpha)
    if err is None:
        assert tr_kind == te_kind == "ok" and tr.shape[0] >= 1 and float(alpha) > 0
        N, a = tr.shape[0], float(alpha)
        expected = np.zeros(te.shape[0])
        for i in range(te.shape[0]):
            for j in range(4):
                v = te_lv.reshape(-1, 4)[i, j]
                count = int((tr_lv.reshape(-1, 4)[:, j] == v).sum())
                expected[i] -= math.log((count + a) / (N + 17 * a))
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-10)


def _tiny_diffusion(T=4):
    return GaussianDiffusion(NoiseSchedule.from_name("cosine", T, dtype=torch.float64))


def _zero_eps(x, t, **kwargs):
    return torch.zeros_like(x)


_SAMPLE_GOOD = {
    "num_images": st.sampled_from([1, 3, np.int64(2)]),
    "method": st.sampled_from(["ddpm", "ddim"]),
    "num_steps": st.sampled_from([None, 2, np.int64(4)]),
    "eta": st.sampled_from([0.0, 1.0, np.float32(0.5)]),
    "batch_size": st.sampled_from([1, 2, np.int64(500)]),
    "shape": st.sampled_from([(1, 2, 2), (2,)]),
}
_SAMPLE_BAD = {
    "num_images": st.sampled_from([0, -1, 2.5, True, "3", None]),
    "method": st.sampled_from(["DDIM", "euler", 3, None]),
    "num_steps": st.sampled_from([0, -1, 5, 2.5, "2"]),
    "eta": st.sampled_from([float("nan"), float("inf"), -0.5, "0", None]),
    "batch_size": st.sampled_from([0, -1, 1.5, None]),
    "shape": st.sampled_from([(2.5, 2), (0, 2), (), "1x2", (-1,)]),
    "model_kwargs": st.sampled_from(["wrong rows", "not a dict"]),
}


@settings(max_examples=40)
@given(st.data(), st.sampled_from([None, None, *_SAMPLE_BAD]))
def test_sample_digits(data, bad):
    """One argument at a time is bad (or none): the call is refused, or gives the right shape and count."""
    kwargs = {k: data.draw(_SAMPLE_BAD[k] if k == bad else v, label=k) for k, v in _SAMPLE_GOOD.items()}
    if kwargs["method"] == "ddpm" and bad != "num_steps":
        kwargs["num_steps"] = data.draw(st.sampled_from([None, 4]), label="ddpm steps")
    n = kwargs["num_images"]
    rows = int(n) if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 else 1
    kwargs["model_kwargs"] = {"rows": {"y": torch.zeros(rows, dtype=torch.long)}, "wrong rows": {"y": torch.zeros(rows + 1)},
                              "not a dict": [1]}[data.draw(_SAMPLE_BAD["model_kwargs"]) if bad == "model_kwargs" else "rows"]
    diff = _tiny_diffusion()
    result, err = call(D.sample_digits, diff, _zero_eps, clip_x0=False, generator=torch.Generator().manual_seed(0), **kwargs)
    if err is None:
        assert bad is None
        n, shape = int(kwargs["num_images"]), kwargs["shape"]
        assert result.samples.shape == (n, *shape) and bool(torch.isfinite(result.samples).all())
        steps = diff.T if kwargs["num_steps"] is None else int(kwargs["num_steps"])
        assert result.network_calls == -(-n // int(kwargs["batch_size"])) * steps
    else:
        assert bad is not None


@given(st.one_of(st.lists(st.one_of(st.integers(-1, 6), st.just(2.0)), max_size=4),
                 st.sampled_from([[4, 2, 1], [3], [4, 1], (2, 1), "4", [1, 2]]),
                 st.sampled_from([torch.tensor([4, 3]), torch.tensor([2.0, 1.0]), np.array([4, 2])])),
       st.sampled_from(["ok", "ok", "ok", "nan", "int", "empty"]))
def test_ddim_invert(timesteps, kind):
    diff = _tiny_diffusion()
    x0 = {"ok": torch.linspace(-1, 1, 6, dtype=torch.float64).reshape(3, 2), "nan": torch.full((3, 2), float("nan")),
          "int": torch.ones(3, 2, dtype=torch.long), "empty": torch.zeros(0, 2)}[kind]
    result, err = call(D.ddim_invert, diff, _zero_eps, x0, timesteps)
    if err is None:
        taus = [int(t) for t in (timesteps.tolist() if hasattr(timesteps, "tolist") else timesteps)]
        assert kind == "ok" and taus and all(1 <= t <= 4 for t in taus) and all(b < a for a, b in zip(taus, taus[1:]))
        # with eps = 0 every upward step rescales by sqrt(abar_next / abar_cur): x0 * sqrt(abar_{tau_1})
        torch.testing.assert_close(result, x0 * math.sqrt(float(diff.schedule.alpha_bar[taus[0]])))


@given(st.integers(0, 3), st.sampled_from(["ok", "ok", "zero", "nan", "shape", "dtype", "parallel"]),
       st.one_of(st.floats(-0.5, 1.5), odd_numbers, st.just(np.float32(0.25)), st.just(torch.tensor(0.5))))
def test_slerp(d, kind, lam):
    g = torch.Generator().manual_seed(d)
    z0, z1 = torch.randn(d, 2, generator=g), torch.randn(d, 2, generator=g)
    if kind == "zero":
        z0 = torch.zeros_like(z0)
    elif kind == "nan":
        z1 = torch.full_like(z1, float("nan"))
    elif kind == "shape":
        z1 = z1[:, :1]
    elif kind == "dtype":
        z1 = z1.double()
    elif kind == "parallel":
        z1 = 2 * z0
    result, err = call(D.slerp, z0, z1, lam)
    if err is None:
        lam = float(lam)
        assert kind in ("ok", "parallel") and d >= 1 and 0 <= lam <= 1
        a, b = z0.double().flatten().numpy(), z1.double().flatten().numpy()
        theta = math.acos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))
        if math.sin(theta) < 1e-6:
            expected = (1 - lam) * a + lam * b
        else:
            expected = (math.sin((1 - lam) * theta) * a + math.sin(lam * theta) * b) / math.sin(theta)
        np.testing.assert_allclose(result.double().flatten().numpy(), expected, rtol=1e-4, atol=1e-5)


@given(st.one_of(st.sampled_from(["ddpm_digits.pt", "compare_hybrid_cosine.pt", "", "x.pt"]), st.text(max_size=5), st.integers()),
       st.sampled_from([True, False, 1, "yes"]))
def test_load_digits_reference(checkpoint, verify):
    result, err = call(D.load_digits_reference, checkpoint, verify=verify)
    if err is None:
        assert checkpoint in ("ddpm_digits.pt", "compare_hybrid_cosine.pt") and isinstance(verify, bool)
        assert result["num_samples"] == 447 and "regenerate" in result


@given(st.sampled_from(["str", "empty", "bad json", "no key"]))
def test_write_digits_reference_refuses_what_is_not_a_result_file(tmp_path_factory, kind):
    folder = tmp_path_factory.mktemp("ref")
    (folder / "bad.json").write_text("{not json")
    (folder / "nokey.json").write_text('{"a": 1}')
    arg = {"str": str(folder / "bad.json"), "empty": [], "bad json": [folder / "bad.json"], "no key": [folder / "nokey.json"]}[kind]
    must_refuse(D.write_digits_reference, arg, out=folder / "out.json")
    assert not (folder / "out.json").exists()


def test_sample_result_seconds_per_image():
    res = D.SampleResult(samples=torch.zeros(4, 1, 8, 8), seconds=2.0, network_calls=8)
    assert res.seconds_per_image == 0.5


@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from([0.05, 0.5, 0.0, 1.5, float("nan")]),
       st.sampled_from(["ok", "nan", "shape", "int"]), st.integers(0, 5))
def test_memorisation_report(n, m, quantile, kind, seed):
    g = torch.Generator().manual_seed(seed)
    train = torch.rand(m, 1, 2, 2, generator=g)
    samples = {"ok": torch.rand(n, 1, 2, 2, generator=g), "nan": torch.full((n, 1, 2, 2), float("nan")),
               "shape": torch.rand(n, 1, 3, 3, generator=g), "int": torch.ones(n, 1, 2, 2, dtype=torch.long)}[kind]
    held = torch.rand(7, 1, 2, 2, generator=g)
    d, err = _call(MEM.nearest_train_distance, samples, train)
    assert (err is None) == (kind == "ok")
    if err is None:
        dist, j = d
        brute = torch.cdist(samples.flatten(1).double(), train.flatten(1).double())
        torch.testing.assert_close(dist, brute.min(1).values, atol=1e-6, rtol=0)
        assert torch.equal(brute[torch.arange(n), j], brute.min(1).values)
    rep, err = _call(MEM.memorisation_report, samples, train, held, quantile)
    assert (err is None) == (kind == "ok" and 0 < quantile <= 1)
    if err is None:
        assert 0 <= rep.near_copy_share <= 1 and rep.ratio >= 0
        copies = _call(MEM.memorisation_report, train, train, held, quantile)[0]
        assert copies.near_copy_share == 1.0 and copies.ratio == 0.0  # the training set itself: all copies
