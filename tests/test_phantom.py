"""Phantom generator: determinism, tissue classes, contrast order, calibration against the real exams, degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from _geometry_factory import ellipsoid_geometry
from transferlimits.config import GridSpec
from transferlimits.data.calibration import ZONES, calibration_table, zone_stats
from transferlimits.data.degrade import epi_distortion, through_plane_degrade, undistort
from transferlimits.data.phantom import synthesize

torch.set_num_threads(1)
GRID = GridSpec((16, 64, 64), (3.0, 1.5, 1.5))
#: Stated calibration tolerance: phantom per-zone mean ADC within +-20 % of the real exams'.
ADC_TOLERANCE = 0.20


@pytest.fixture(scope="module")
def geom():
    return ellipsoid_geometry()


def test_same_seed_identical_different_seed_differs(geom):
    a, b, c = synthesize(geom, GRID, 0), synthesize(geom, GRID, 0), synthesize(geom, GRID, 1)
    for seq in ("t2w", "hbv", "adc", "zones", "lesion", "body"):
        np.testing.assert_array_equal(getattr(a, seq), getattr(b, seq))
    for seq in ("t2w", "hbv", "adc"):
        assert not np.array_equal(getattr(a, seq), getattr(c, seq))
    other = ellipsoid_geometry(case_id="10002_1000002")
    assert not np.array_equal(synthesize(other, GRID, 0).t2w, a.t2w)  # seeded by the case id too


def test_output_grid_dtypes_and_labels(geom):
    case = synthesize(geom, GRID, 0)
    assert case.shape == GRID.shape and case.spacing == GRID.spacing and case.source == "phantom"
    assert case.t2w.dtype == case.hbv.dtype == case.adc.dtype == np.float32
    assert set(np.unique(case.zones)) <= {0, 1, 2, 3} and {1, 2} <= set(np.unique(case.zones))
    assert (case.lesion == 2).sum() > 5 and (case.lesion[case.lesion > 0] == 2).all()
    assert (case.extra["lesion_isup"][case.lesion == 2] == 3).all()
    assert np.isfinite(case.t2w).all() and (case.adc >= 0).all() and (case.hbv >= 0).all()
    assert 0 < case.body.mean() <= 1 and (case.body[case.zones > 0] == 1).all()
    # the gland sits in the middle of the crop
    centre = np.array([c.mean() for c in np.nonzero(case.zones)])
    assert np.all(np.abs(centre - (np.array(GRID.shape) - 1) / 2) < np.array(GRID.shape) * 0.1)


def test_contrast_order_lesion_pz_tz(geom):
    case = synthesize(geom, GRID, 3)
    s = zone_stats(case)
    assert s.loc["lesion", "adc_mean"] < s.loc["PZ", "adc_mean"]
    assert s.loc["TZ", "adc_mean"] < s.loc["PZ", "adc_mean"]
    assert s.loc["TZ", "t2w_mean"] < s.loc["PZ", "t2w_mean"]
    assert s.loc["lesion", "hbv_mean"] > 1.3 * s.loc["PZ", "hbv_mean"]  # restricted diffusion is bright


def test_higher_isup_is_more_conspicuous():
    drops = []
    for isup in (2, 5):
        s = zone_stats(synthesize(ellipsoid_geometry(isup=isup), GRID, 0))
        drops.append(1 - s.loc["lesion", "adc_mean"] / s.loc["PZ", "adc_mean"])
    assert drops[1] > drops[0] + 0.05


def test_lesion_conspicuity_scales_the_lesion_drop_and_nothing_else():
    geom = ellipsoid_geometry(isup=3)
    base, strong = synthesize(geom, GRID, 0), synthesize(geom, GRID, 0, lesion_conspicuity=2.0)
    drop = [1 - zone_stats(c).loc["lesion", "adc_mean"] / zone_stats(c).loc["PZ", "adc_mean"] for c in (base, strong)]
    assert drop[1] > 1.5 * drop[0]
    # the random draws do not depend on it: away from the lesion (beyond the smoothing of the DWI grid) nothing moves
    far = ~ndimage.binary_dilation(base.lesion > 0, iterations=4)
    np.testing.assert_array_equal(base.t2w[far], strong.t2w[far])
    np.testing.assert_array_equal(base.lesion, strong.lesion)
    with pytest.raises(ValueError, match="lesion_conspicuity"):
        synthesize(geom, GRID, 0, lesion_conspicuity=0.0)


def test_pirads_only_lesion_and_negative_case():
    only = synthesize(ellipsoid_geometry(pirads=4, isup=1, lesion=False), GRID, 0)
    assert (only.lesion == 1).sum() > 0 and not (only.lesion == 2).any()
    assert (only.zones[only.lesion == 1] > 0).all()
    neg = synthesize(ellipsoid_geometry(pirads=None, isup=0, lesion=False), GRID, 0)
    assert not neg.lesion.any()


def test_bad_grid_raises(geom):
    with pytest.raises(ValueError, match="GridSpec"):
        synthesize(geom, (16, 64, 64), 0)


@pytest.fixture(scope="module")
def calibration_cases():
    from transferlimits.data.calibration import calibration_pairs

    return calibration_pairs(GRID, seeds=(0, 1))


@pytest.fixture(scope="module")
def calibration(calibration_cases):
    return calibration_table(*calibration_cases)


def test_calibration_adc_within_tolerance(calibration):
    t = calibration.set_index(["zone", "sequence"])
    for zone in ("PZ", "TZ", "lesion", "other_gland"):
        real, ph = t.loc[(zone, "adc"), "real_mean"], t.loc[(zone, "adc"), "phantom_mean"]
        assert abs(ph / real - 1) <= ADC_TOLERANCE, f"{zone}: phantom ADC {ph:.0f} vs real {real:.0f}"
    for col in ("real_mean", "phantom_mean"):
        assert t.loc[("lesion", "adc"), col] < t.loc[("PZ", "adc"), col]
        assert t.loc[("TZ", "adc"), col] < t.loc[("PZ", "adc"), col]
        assert t.loc[("TZ", "t2w"), col] < t.loc[("PZ", "t2w"), col]
    assert set(calibration["zone"]) == set(ZONES)


def test_calibration_check_can_fail(calibration_cases):
    """Negative control: phantoms with ADC scaled by 1.5 fail the same tolerance."""
    import dataclasses

    real, phantoms = calibration_cases
    bad = [dataclasses.replace(c, adc=c.adc * 1.5) for c in phantoms]
    t = calibration_table(real, bad).set_index(["zone", "sequence"])
    assert abs(t.loc[("PZ", "adc"), "ratio"] - 1) > ADC_TOLERANCE
    with pytest.raises(ValueError, match="need >= 1"):
        calibration_table(real, [])


def test_through_plane_degrade_facts():
    rng = np.random.default_rng(0)
    flat = np.repeat(rng.normal(size=(1, 8, 8)), 6, axis=0).astype(np.float32)
    np.testing.assert_allclose(through_plane_degrade(flat, 2), flat, atol=1e-5)  # z-constant: unchanged
    alt = np.zeros((6, 4, 4), np.float32)
    alt[1::2] = 1.0
    out = through_plane_degrade(alt, 2)
    assert out.shape == alt.shape
    np.testing.assert_allclose(out, 0.5, atol=1e-6)  # pairs averaged: alternating slices vanish
    with pytest.raises(ValueError, match="factor"):
        through_plane_degrade(alt, 0)
    with pytest.raises(ValueError, match="D, H, W"):
        through_plane_degrade(alt[0], 2)


def test_epi_distortion_and_inverse(geom):
    case = synthesize(geom, GRID, 0)
    img = case.hbv
    dist, disp = epi_distortion(img, case.spacing, np.random.default_rng(1), max_shift_mm=4.0,
                                mask=case.zones > 0)
    assert dist.shape == disp.shape == img.shape
    assert np.abs(disp).max() == pytest.approx(4.0 / case.spacing[1], rel=1e-4)
    err_before = np.abs(dist - img).mean()
    err_after = np.abs(undistort(dist, disp) - img).mean()
    assert err_before > 0.05 * img.mean()
    assert err_after < err_before / 4
    # Jacobian modulation conserves the signal along phase-encode lines (away from the edges)
    np.testing.assert_allclose(dist.sum(), img.sum(), rtol=0.03)
    with pytest.raises(ValueError, match="mask shape"):
        epi_distortion(img, case.spacing, np.random.default_rng(0), mask=np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="max_shift_mm"):
        epi_distortion(img, case.spacing, np.random.default_rng(0), max_shift_mm=-1)


def test_data_figures_render(geom):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from transferlimits.figures.data import mid_gland_slice, plot_phantom_vs_real, plot_zone_histograms

    a, b = synthesize(geom, GRID, 0), synthesize(geom, GRID, 1)
    b.source = "real"
    fig = plot_phantom_vs_real(a, b)
    assert isinstance(fig, Figure) and len(fig.axes) >= 8
    assert (a.lesion[mid_gland_slice(a)] > 0).any()  # the shown slice has the lesion
    fig2 = plot_zone_histograms([b], [a], zones=("PZ", "lesion"))
    assert len(fig2.axes) == 6
