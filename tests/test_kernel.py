"""The resampler against Pillow's exact bilinear reference, on images the tests make."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from imagegen import ALL, chroma, luma, photo_like, psnr, reference_frame
from PIL import Image

from zoomreel import kernel
from zoomreel.kernel import LANES, axis_weights, page_out_compiler, resample, rgb_to_yuv420
from zoomreel.pyramid import Pyramid

OUT = (320, 180)
SCALES = [1 / 3, 0.77, 1.0, 1.31, 1.5, 2.0, 2.5, 3.0, 3.3, 4.0, 5.7, 6.2]


@pytest.fixture(scope="module", params=sorted(ALL))
def source(request):
    image = ALL[request.param](2000, 1200)
    pyramid = Pyramid(np.asarray(image))
    pyramid.prepare(max_scale=6.5)
    return image, pyramid


def render(pyramid, box, size=OUT, cubic=False):
    w, h = size
    y = np.zeros((h, w), np.uint8)
    u = np.zeros((h // 2, w // 2), np.uint8)
    v = np.zeros_like(u)
    pyramid.render(box, y, u, v, cubic)
    return y, u, v


def box_at(scale, size=OUT, centre=(1000.37, 600.81)):
    w, h = size[0] * scale, size[1] * scale
    return (centre[0] - w / 2, centre[1] - h / 2, centre[0] + w / 2, centre[1] + h / 2)


@pytest.mark.unit
@pytest.mark.parametrize("scale", SCALES)
def test_luma_matches_pillow_reference(source, scale):
    image, pyramid = source
    box = box_at(scale)
    y, _, _ = render(pyramid, box)
    reference = luma(reference_frame(image, box, OUT))
    assert psnr(y, reference) >= 38.0


@pytest.mark.unit
@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.77, 1.0, 1.5, 3.0, 5.7])
def test_catmull_rom_matches_pillows_bicubic(source, scale):
    image, pyramid = source
    box = box_at(scale)
    y, _, _ = render(pyramid, box, cubic=True)
    reference = image.resize(OUT, Image.Resampling.BICUBIC, box=box)
    # Pillow rounds and clamps its first pass to 8 bits, which the cubic's overshoot at
    # hard edges (black-on-white text) makes visible; the kernel keeps that pass in
    # float. Photo-like and line images stay >= 38 dB, text >= 36.5 dB.
    assert psnr(y, luma(reference)) >= 36.0


@pytest.mark.unit
def test_catmull_rom_is_sharper_when_magnifying():
    """Against a Lanczos reference of a 4x magnification, the cubic filter is closer
    than the triangle (the check that the option does something)."""
    image = ALL["text"](2000, 1200)
    pyramid = Pyramid(np.asarray(image))
    box = box_at(0.25)
    lanczos = luma(image.resize(OUT, Image.Resampling.LANCZOS, box=box))
    bilinear = psnr(render(pyramid, box)[0], lanczos)
    cubic = psnr(render(pyramid, box, cubic=True)[0], lanczos)
    assert cubic > bilinear + 1.0, (cubic, bilinear)


@pytest.fixture(scope="module")
def photo():
    image = ALL["photo"](2000, 1200)
    pyramid = Pyramid(np.asarray(image))
    pyramid.prepare(max_scale=6.5)
    return image, pyramid


@pytest.mark.unit
@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0, 4.0, 6.2])
def test_chroma_matches_half_size_reference(photo, scale):
    """Chroma is sampled from a 2x2-averaged source, so it is checked on photo-like
    content (1-pixel saturated lines legitimately lose chroma in 4:2:0)."""
    image, pyramid = photo
    box = box_at(scale)
    _, u, v = render(pyramid, box)
    cb, cr = chroma(reference_frame(image, box, (OUT[0] // 2, OUT[1] // 2)))
    assert psnr(u, cb) >= 32.0
    assert psnr(v, cr) >= 32.0


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["lines", "text"])
def test_unfiltered_sampling_would_fail_the_bar(kind):
    """The bar is meaningful: point sampling at 2x minification (no low-pass) aliases
    far below 38 dB on detailed images."""
    image = ALL[kind](2000, 1200)
    box = box_at(2.0)
    naive = image.resize(OUT, Image.Resampling.NEAREST, box=box)
    assert psnr(luma(naive), luma(reference_frame(image, box, OUT))) < 36.0


@pytest.mark.unit
def test_box_touching_every_edge_is_the_whole_image():
    image = ALL["photo"](640, 360)
    y, _, _ = render(Pyramid(np.asarray(image)), (0.0, 0.0, 640.0, 360.0))
    assert psnr(y, luma(reference_frame(image, (0, 0, 640, 360), OUT))) >= 45.0


@pytest.mark.unit
def test_axis_weights_are_normalised_and_local():
    first, weights, ntaps = axis_weights(10.25, 410.25, 1000, 100, 1.0)
    assert np.allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert ntaps <= weights.shape[1]
    centres = first + (weights * np.arange(weights.shape[1])).sum(axis=1) + 0.5
    assert np.allclose(centres, 10.25 + (np.arange(100) + 0.5) * 4.0, atol=1e-3)


def _dense(first: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """The taps of one axis as a (outputs, size) matrix, in float64."""
    matrix = np.zeros((len(first), size))
    for i, (lo, row) in enumerate(zip(first, weights, strict=True)):
        taps = row[: size - lo]  # padding taps past the edge weigh 0
        matrix[i, lo:lo + len(taps)] = taps
    return matrix


#: Both horizontal passes, whatever this CPU has: resample picks the permuted one where
#: Numba compiles for AVX-512 and a tile spans at most 64 source columns (the lane-by-lane
#: stand-in for the permute runs here otherwise), the dense one elsewhere.
PASSES = {"resample": resample, "permuted": kernel._resample_permuted,
          "dense": kernel._resample_dense}


@pytest.mark.unit
@pytest.mark.parametrize("kind", sorted(PASSES))
@given(
    src_size=st.tuples(st.integers(1, 90), st.integers(1, 70)),
    out_size=st.tuples(st.integers(LANES, 70), st.integers(1, 23)),
    box=st.tuples(st.floats(0.0, 0.9), st.floats(0.0, 0.9), st.floats(0.05, 1.0),
                  st.floats(0.05, 1.0)),
    cubic=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_resample_is_the_separable_sum_at_every_size_and_edge(kind, src_size, out_size, box,
                                                              cubic, seed):
    """Every output width (whole vectors or not), source widths under one vector, boxes
    at the edges, magnified and minified: each pixel is the two axes' taps applied in
    float64, to rounding; into a plane whose rows are padded (as a video frame's are),
    whose padding stays untouched."""
    (sw, sh), (ow, oh) = src_size, out_size
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (sh, sw), dtype=np.uint8)
    x0, y0 = box[0] * sw, box[1] * sh
    x1, y1 = x0 + box[2] * (sw - x0), y0 + box[3] * (sh - y0)
    xf, xw, nx = axis_weights(x0, x1, sw, ow, 1.0, cubic)
    yf, yw, ny = axis_weights(y0, y1, sh, oh, 1.0, cubic)
    if kind == "permuted" and kernel._tile_span(xf, nx) > 2 * kernel._WINDOW:
        return  # beyond what the permuted pass takes (resample goes dense there)
    padded = np.full((oh, ow + 13), 7, dtype=np.uint8)
    PASSES[kind](src, xf, xw, nx, yf, yw, ny, padded[:, :ow])
    want = _dense(yf, yw, sh) @ src @ _dense(xf, xw, sw).T
    want = np.clip(np.floor(want + 0.5), 0, 255)
    assert np.abs(padded[:, :ow].astype(int) - want).max() <= 1
    assert (padded[:, ow:] == 7).all()


def _one_frame(outputs: str) -> None:
    """Resample a photograph-like plane at the scales a zoom uses (the permuted pass to
    3.7, where it picks from two windows past 1.9; the dense one beyond), every pass,
    into ``outputs`` (.npz)."""
    src = np.asarray(photo_like(900, 500, seed=3).convert("L"))
    planes = {}
    for scale in (0.7, 1.0, 1.47, 2.0, 3.3, 3.9, 5.2):
        w, h = int(900 / scale) // LANES * LANES, int(500 / scale)
        xf, xw, nx = axis_weights(3.3, 3.3 + w * scale, 900, w, 1.0)
        yf, yw, ny = axis_weights(1.7, 1.7 + h * scale, 500, h, 1.0)
        for name, fn in PASSES.items():
            if name == "permuted" and kernel._tile_span(xf, nx) > 2 * kernel._WINDOW:
                continue
            planes[f"{name}{scale}"] = out = np.empty((h, w), np.uint8)
            fn(src, xf, xw, nx, yf, yw, ny, out)
    np.savez(outputs, permutes=kernel.PERMUTES, **planes)


@pytest.mark.system
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="builds for an x86-64 CPU without AVX-512")
def test_both_passes_agree_for_cpus_with_and_without_avx512(tmp_path):
    """What Numba compiles for a CPU without AVX-512 (named by NUMBA_CPU_FEATURES, in a
    process of its own, where PERMUTES is False and the permuted pass is the lane-by-lane
    stand-in) makes the same frames as what it compiles for this one, pass by pass; and
    every pass makes the dense pass's frames."""
    haswell = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cx16,+f16c,+fma,+fsgsbase,+lzcnt,+mmx,+movbe,"
               "+pclmul,+popcnt,+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")
    env = {**os.environ, "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": haswell,
           "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    script = f"import test_kernel; test_kernel._one_frame({str(tmp_path / 'avx2.npz')!r})"
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=600)
    _one_frame(str(tmp_path / "here.npz"))
    avx2, here = np.load(tmp_path / "avx2.npz"), np.load(tmp_path / "here.npz")
    assert not avx2["permutes"] and here["permutes"] == kernel.PERMUTES
    assert sorted(avx2.files) == sorted(here.files)
    for name in set(avx2.files) - {"permutes"}:
        assert np.array_equal(avx2[name], here[name]), name
        scale = name.removeprefix("permuted").removeprefix("resample").removeprefix("dense")
        assert np.array_equal(here[name], here[f"dense{scale}"]), name


@pytest.mark.unit
def test_resample_refuses_an_output_narrower_than_a_vector():
    src = np.zeros((40, 40), np.uint8)
    xf, xw, nx = axis_weights(0.0, 40.0, 40, LANES - 1, 1.0)
    yf, yw, ny = axis_weights(0.0, 40.0, 40, 20, 1.0)
    with pytest.raises(ValueError, match="narrower"):
        resample(src, xf, xw, nx, yf, yw, ny, np.zeros((20, LANES - 1), np.uint8))


@pytest.mark.unit
def test_resample_refuses_planes_whose_rows_are_not_contiguous():
    src = np.zeros((40, 80), np.uint8)
    xf, xw, nx = axis_weights(0.0, 40.0, 40, 20, 1.0)
    yf, yw, ny = axis_weights(0.0, 40.0, 40, 20, 1.0)
    out = np.zeros((20, 20), np.uint8)
    with pytest.raises(ValueError, match="contiguous"):
        resample(src[:, ::2], xf, xw, nx, yf, yw, ny, out)
    with pytest.raises(ValueError, match="contiguous"):
        resample(src[:, :40], xf, xw, nx, yf, yw, ny, np.zeros((20, 40), np.uint8)[:, ::2])


@pytest.mark.unit
def test_colour_conversion_is_bt709_limited_range():
    rgb = np.array(
        [[[0, 0, 0], [255, 255, 255]], [[255, 0, 0], [0, 0, 255]]], dtype=np.uint8
    )
    y = np.empty((2, 2), np.uint8)
    u = np.empty((1, 1), np.uint8)
    v = np.empty((1, 1), np.uint8)
    rgb_to_yuv420(rgb, y, u, v)
    assert y.tolist() == [[16, 235], [63, 32]]
    cb, cr = chroma(rgb.reshape(-1, 3).mean(axis=0))
    assert abs(int(u[0, 0]) - cb) <= 0.5 and abs(int(v[0, 0]) - cr) <= 0.5


def _compiler_resident_kb() -> int:
    """Resident kB of LLVM's library (llvmlite's) in this process."""
    resident, inside = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's first line
                inside = len(fields) >= 6 and fields[5].endswith("libllvmlite.so")
            elif inside and fields[0] == "Rss:":
                resident += int(fields[1])
    return resident


@pytest.mark.unit
@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="Linux's /proc only")
def test_page_out_compiler_gives_llvm_back_and_the_kernels_still_run():
    rgb = np.asarray(photo_like(640, 360, seed=8))
    box = (100.0, 50.0, 580.0, 320.0)

    def frame() -> np.ndarray:
        y, u, v = (np.zeros((180, 320), np.uint8), np.zeros((90, 160), np.uint8),
                   np.zeros((90, 160), np.uint8))
        Pyramid(rgb).render(box, y, u, v)
        return np.concatenate([y.ravel(), u.ravel(), v.ravel()])

    before = frame()  # every kernel loaded (compiled, or read from Numba's cache)
    resident = _compiler_resident_kb()
    assert page_out_compiler() > 0
    after = _compiler_resident_kb()
    assert after < resident / 2, (resident, after)
    assert np.array_equal(frame(), before)
