"""The `cosmos` test set: real galaxies that are not the project's model, in a shear ring test.

Every other test set is drawn from the estimators' own model (one Sérsic, inside the prior's
box). This one draws the 100 galaxies of GalSim's example COSMOS catalog
(``tests/data/cosmos/``, its README gives the sources and licence) as GalSim builds them from
their published parametric fits: 64 single Sérsic profiles and 36 de Vaucouleurs bulges plus
exponential discs, many larger or more concentrated than the training box allows. It measures
what each estimator does when its model is wrong.

How a row is made (`build`): each catalog galaxy is scaled to a total flux that puts it at a
target SNR drawn in `CosmosSpec.snr` (the flux clipped to the simulations' flux range), rotated
to each of ``angles`` orientations of a ring (``k * 180 / angles`` degrees, so the intrinsic
shapes cancel on average), sheared by a known applied shear of magnitude ``shear`` in a direction
drawn per galaxy, once with ``+g`` and once with ``-g`` under the same noise seed (the paired ring
test: the noise and the intrinsic shape cancel in the difference), convolved with the
simulations' Moffat (beta = 2) PSF and drawn by GalSim on the 64 x 64, 0.23" stamp with Poisson
plus read noise, ``realizations`` times.

The noise has the simulations' statistics (Poisson on the galaxy's counts, sky 0, plus Gaussian
read noise ``sigma``) but is drawn as common random numbers (`paired_noise`): one uniform and
one normal number per pixel from the row's seed, the Poisson count the uniform's quantile. GalSim's
Poisson deviate uses as many random numbers as its mean asks, so `galaxies.simulation.render.add_noise`
with one seed gives a +g and a -g image unrelated noise; here the pair's noise is the same but
where the two images' counts differ.

The file follows the data-set contract (docs/architecture.md) with these meanings and extra
fields:

* ``label``: total flux; the catalog's Sérsic index for a single Sérsic (NaN for a bulge plus
  disc); the half-light radius ``r`` (below); and ``g1, g2`` the APPLIED shear (the ring test's
  truth, not the galaxy's own shape).
* ``r``: the half-light radius of the unconvolved profile before any shear, each component
  made round with its area kept (GalSim's shear keeps area): for a single Sérsic that is the
  Sérsic's own ``half_light_radius``, the meaning of the label everywhere else.
* ``g_total`` (N, 2): the shear of the drawn Sérsic (its intrinsic shape, rotated, then the
  applied shear), the fit's truth for a single Sérsic; NaN for a bulge plus disc.
* ``kind`` (0 single Sérsic, 1 bulge plus disc, `KINDS`); ``in_box``: the galaxy's flux,
  radius, SNR, and for a single Sérsic its index and total shear, inside the training prior on
  every row of its ring (so a ring is never split); ``galaxy`` (catalog row), ``angle``
  (degrees), ``realization``, ``sign`` (+1 / -1 of the applied shear), ``bulge_fraction``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import galsim
import numpy as np

from galaxies.conventions import IMAGE_SIZE, MOFFAT_BETA, PIXEL_SCALE, RANGES, SNR_RANGE, snr
from galaxies.runtime import profiles
from galaxies.runtime.errors import InputError, OutputExistsError
from galaxies.storage import files
from galaxies.storage.atomic import atomic_h5

__all__ = ["CATALOG_DIR", "CATALOG_FILE", "KINDS", "SERSIC", "BULGE_DISC", "CatalogGalaxy",
           "catalog", "half_light_radius", "CosmosSpec", "SPECS", "spec_for", "build",
           "build_for_profile", "recipe_record",
           "draw_row", "paired_noise", "total_shear", "EXTRA_FIELDS"]

#: where the three tables of GalSim's example catalog are committed: beside the package, not under
#: ``GALAXIES_ROOT`` (which moves only data and results)
CATALOG_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "cosmos"
CATALOG_FILE = "real_galaxy_catalog_23.5_example.fits"
#: the galaxy kinds, as the ``kind`` field numbers them
KINDS = ("sersic", "bulge+disc")
SERSIC, BULGE_DISC = 0, 1
#: the extra per-row fields of a `cosmos` file
EXTRA_FIELDS = ("g_total", "kind", "in_box", "galaxy", "angle", "realization", "sign",
                "bulge_fraction")


@dataclass(frozen=True)
class CatalogGalaxy:
    """One catalog galaxy as GalSim builds it (``use_real=False``), at unit flux and before any
    rotation: ``kind`` (`SERSIC` or `BULGE_DISC`), ``components`` ((sersic_n, hlr, flux
    fraction, q, beta in rad) for each Sérsic component), its half-light radius ``r`` (see the
    module docstring) and, for a single Sérsic, ``sersic_n``."""

    index: int
    kind: int
    components: tuple
    r: float
    sersic_n: float
    bulge_fraction: float

    def profile(self, angle_deg: float = 0.0) -> galsim.GSObject:
        """The unit-flux profile, rotated by ``angle_deg`` (no applied shear, no PSF)."""
        parts = []
        for n, hlr, frac, q, beta in self.components:
            part = galsim.Sersic(n, half_light_radius=hlr, flux=frac)
            if q < 1.0:
                part = part.shear(q=q, beta=beta * galsim.radians)
            parts.append(part)
        gal = parts[0] if len(parts) == 1 else galsim.Add(parts)
        return gal.rotate(angle_deg * galsim.degrees) if angle_deg else gal

    def intrinsic_shear(self) -> tuple[float, float]:
        """(g1, g2) of a single Sérsic's shape at angle 0; NaN for a bulge plus disc."""
        if self.kind != SERSIC:
            return float("nan"), float("nan")
        _, _, _, q, beta = self.components[0]
        if q >= 1.0:
            return 0.0, 0.0
        s = galsim.Shear(q=q, beta=beta * galsim.radians)
        return s.g1, s.g2


def _check_dir(directory) -> Path:
    directory = Path(directory)
    if not (directory / CATALOG_FILE).is_file():
        raise InputError(f"no COSMOS catalog in {directory}: {CATALOG_FILE} is missing "
                         f"(the tables ship in {CATALOG_DIR})")
    return directory


@lru_cache(maxsize=4)
def galsim_catalog(directory: str | Path = CATALOG_DIR) -> galsim.COSMOSCatalog:
    """GalSim's own catalog object over the committed tables (parametric galaxies only)."""
    directory = _check_dir(directory)
    return galsim.COSMOSCatalog(file_name=CATALOG_FILE, dir=str(directory), use_real=False,
                                exclusion_level="none")


@lru_cache(maxsize=4)
def catalog(directory: str | Path = CATALOG_DIR) -> tuple[CatalogGalaxy, ...]:
    """Every galaxy of the catalog, read from its parametric fits as GalSim reads them
    (`galsim.COSMOSCatalog._buildParametric`, without rounding the Sérsic index)."""
    cat = galsim_catalog(directory)
    out = []
    for i in range(cat.nobjects):
        rec = cat.getParametricRecord(i)
        if rec["use_bulgefit"]:
            b = rec["bulgefit"]
            bulge_flux, disc_flux = float(rec["flux"][1]), float(rec["flux"][2])
            frac = bulge_flux / (bulge_flux + disc_flux)
            comps = ((4.0, float(rec["hlr"][1]), frac, float(b[11]), float(b[15])),
                     (1.0, float(rec["hlr"][2]), 1.0 - frac, float(b[3]), float(b[7])))
            kind, n = BULGE_DISC, float("nan")
        else:
            s = rec["sersicfit"]
            n = float(np.clip(s[2], 0.3, 6.0))  # GalSim's own guard on the index
            comps = ((n, float(rec["hlr"][0]), 1.0, float(s[3]), float(s[7])),)
            kind, frac = SERSIC, 0.0
        out.append(CatalogGalaxy(i, kind, comps, half_light_radius(comps), n, frac))
    return tuple(out)


def _enclosed(components, radius: float) -> float:
    """Fraction of the light of the round components inside ``radius`` arcsec: a Sérsic's is
    the regularized incomplete gamma function P(2n, b_n (R / r_e)^(1/n))."""
    from scipy.special import gammainc, gammaincinv
    total = 0.0
    for n, hlr, frac, _, _ in components:
        b = gammaincinv(2 * n, 0.5)
        total += frac * gammainc(2 * n, b * (radius / hlr) ** (1.0 / n))
    return total


def half_light_radius(components) -> float:
    """The half-light radius (arcsec) of the sum of the components, each made round with its
    area kept (its own half-light radius unchanged): exact, by bisection on the enclosed light."""
    from scipy.optimize import brentq
    weight = sum(c[2] for c in components)
    if len(components) == 1:
        return float(components[0][1])
    hlrs = [c[1] for c in components]
    return float(brentq(lambda x: _enclosed(components, x) / weight - 0.5,
                        min(hlrs) * 1e-3, max(hlrs) * 1e3, xtol=1e-10, rtol=1e-12))


@dataclass(frozen=True)
class CosmosSpec:
    """The settings of a `cosmos` set: catalog galaxies used (the first ``galaxies``), ring
    angles, noise realizations per (galaxy, angle), the applied shear's magnitude, the PSF FWHM
    (arcsec) and read noise of every image (v1's, so every network covers them), and the SNR
    range the targets are drawn from (uniformly)."""

    galaxies: int
    angles: int
    realizations: int
    shear: float = 0.03
    psf_fwhm: float = 0.5
    sigma: float = 200.0
    snr: tuple = (15.0, 80.0)

    def __post_init__(self):
        for key in ("galaxies", "angles", "realizations"):
            value = getattr(self, key)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise InputError(f"cosmos {key} = {value} must be a positive integer")
        if not 2 <= self.angles <= 8:
            raise InputError(f"cosmos angles = {self.angles} must be 2 to 8 (a ring)")
        if not 0 < self.shear <= 0.1:
            raise InputError(f"cosmos shear = {self.shear} must be in (0, 0.1]")
        if not (RANGES["psf_fwhm"].low <= self.psf_fwhm <= RANGES["psf_fwhm"].high):
            raise InputError(f"cosmos psf_fwhm = {self.psf_fwhm} is outside the simulations' "
                             f"[{RANGES['psf_fwhm'].low}, {RANGES['psf_fwhm'].high}] arcsec")
        if not (SNR_RANGE.low <= self.snr[0] < self.snr[1] <= SNR_RANGE.high):
            raise InputError(f"cosmos snr = {self.snr} must lie inside the training window "
                             f"[{SNR_RANGE.low:g}, {SNR_RANGE.high:g}]")

    @property
    def size(self) -> int:
        return self.galaxies * self.angles * self.realizations * 2


#: the set's size per profile: smoke 40 images, quick 800 (100 galaxies x 4 angles x 2 signs),
#: full 8,000
SPECS = {"smoke": CosmosSpec(galaxies=10, angles=2, realizations=1),
         "quick": CosmosSpec(galaxies=100, angles=4, realizations=1),
         "full": CosmosSpec(galaxies=100, angles=8, realizations=5)}
#: the set's seed (the recipes use 1-9)
SEED = 26


def spec_for(profile) -> CosmosSpec:
    """The `CosmosSpec` of a profile (by name or `galaxies.runtime.profiles.Profile`)."""
    name = getattr(profile, "name", profile)
    if name not in SPECS:
        raise InputError(f"no cosmos set for profile {name!r}; choose from {', '.join(SPECS)}")
    return SPECS[name]


def _psf(fwhm: float) -> galsim.GSObject:
    return galsim.Moffat(beta=MOFFAT_BETA, fwhm=float(fwhm))


def draw_row(gal: CatalogGalaxy, flux: float, angle_deg: float, g1: float, g2: float,
             psf_fwhm: float) -> np.ndarray:
    """The noiseless image of ``gal`` at total ``flux``, rotated, sheared by (g1, g2), through
    the Moffat PSF, drawn by GalSim on the simulations' stamp (float32)."""
    profile = gal.profile(angle_deg).withFlux(float(flux)).shear(g1=float(g1), g2=float(g2))
    image = galsim.Convolve(profile, _psf(psf_fwhm)).drawImage(
        nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE)
    return image.array.astype(np.float32)


def total_shear(intrinsic, angle_deg: float, applied) -> tuple[float, float]:
    """The shear of an ellipse of shape ``intrinsic`` (g1, g2), rotated by ``angle_deg``, then
    sheared by ``applied``: from the product of GalSim's shear matrices, whose symmetric part
    (``sqrt(A A^T)``) is the composite shear."""
    rot = np.radians(angle_deg)
    rotation = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    a = (galsim.Shear(g1=applied[0], g2=applied[1]).getMatrix() @ rotation
         @ galsim.Shear(g1=intrinsic[0], g2=intrinsic[1]).getMatrix())
    w, v = np.linalg.eigh(a @ a.T)
    s = v @ np.diag(np.sqrt(w)) @ v.T
    s /= np.sqrt(np.linalg.det(s))
    # a unit-determinant shear matrix: [[1 + g1, g2], [g2, 1 - g1]] / sqrt(1 - |g|^2)
    norm = 1.0 / (0.5 * (s[0, 0] + s[1, 1]))
    return float(0.5 * (s[0, 0] - s[1, 1]) * norm), float(s[0, 1] * norm)


def paired_noise(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """A noisy copy of ``clean``: Poisson counts (the quantile of a seeded uniform per pixel)
    plus Gaussian read noise ``sigma``; images of one ``seed`` get the same random numbers."""
    from scipy.stats import poisson
    if seed <= 0:
        raise InputError(f"noise seed = {seed} must be a positive integer")
    rng = np.random.default_rng(int(seed))
    uniform = rng.random(clean.shape)
    read = rng.normal(0.0, float(sigma), clean.shape)
    counts = poisson.ppf(uniform, np.clip(np.asarray(clean, np.float64), 0.0, None))
    return (counts + read).astype(np.float32)


def _galaxy_draws(seed: int, galaxy: int, spec: CosmosSpec):
    """The per-galaxy random numbers: the target SNR and the applied shear's direction."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, galaxy]))
    return rng.uniform(*spec.snr), rng.uniform(0.0, np.pi)


def _noise_seed(seed: int, galaxy: int, angle: int, realization: int) -> int:
    state = np.random.SeedSequence([seed, galaxy, angle, realization, 1]).generate_state(1)[0]
    return int(state % np.uint32(2**31 - 1)) + 1


def _in_box(gal: CatalogGalaxy, flux: float, row_snr: float, g: tuple) -> bool:
    inside = (flux in RANGES["flux"] and gal.r in RANGES["sersic_r"]
              and row_snr in SNR_RANGE)
    if gal.kind == SERSIC:
        inside = inside and gal.sersic_n in RANGES["sersic_n"] and np.hypot(*g) <= RANGES["shear"].high
    return bool(inside)


def recipe_record(spec: CosmosSpec, seed: int = SEED) -> dict:
    """The ``recipe`` attribute of a `cosmos` file (what `build_for_profile` compares)."""
    return {"kind": "cosmos", **{k: (list(v) if isinstance(v, tuple) else v)
                                 for k, v in asdict(spec).items()},
            "size": spec.size, "seed": int(seed), "name": "cosmos", "image_size": IMAGE_SIZE,
            "pixel_scale": PIXEL_SCALE, "moffat_beta": MOFFAT_BETA, "catalog": CATALOG_FILE,
            "noise": "paired"}


def build_for_profile(profile, force: bool = False, progress: bool = True) -> Path:
    """The profile's `cosmos` set, ``data/<profile>/cosmos.h5``: kept when its file carries the
    same recipe, built when missing; one built otherwise is replaced only with ``force``."""
    spec = spec_for(profile)
    path = profiles.get(profile).dataset("cosmos")
    if path.exists():
        try:
            have = files.dataset_info(path)["recipe"]
        except (files.FileFormatError, OSError, KeyError):
            have = None
        if have == recipe_record(spec):
            return path
        if not force:
            raise OutputExistsError(f"{path} exists but was built with other settings; "
                                    "rebuild it with force=True")
    return build(path, spec, force=True, progress=progress)


def build(out, spec: CosmosSpec, seed: int = SEED, directory=CATALOG_DIR, force: bool = False,
          progress: bool = True) -> Path:
    """Write the `cosmos` set of ``spec`` to ``out`` (an HDF5 data set, module docstring)."""
    from tqdm.auto import tqdm

    from galaxies.runtime.console import show_progress
    gals = catalog(directory)
    if spec.galaxies > len(gals):
        raise InputError(f"cosmos galaxies = {spec.galaxies}: the catalog has {len(gals)}")
    out = Path(out)
    if out.exists() and not force:
        raise OutputExistsError(f"{out} exists; rerun with --force to replace it")
    n = spec.size
    rows = {k: [] for k in ("img", "img_nonoise", "label", "snr") + EXTRA_FIELDS}
    for gal in tqdm(gals[:spec.galaxies], disable=not show_progress(progress), unit="galaxy",
                    desc="generate cosmos"):
        target, direction = _galaxy_draws(seed, gal.index, spec)
        unit = draw_row(gal, 1.0, 0.0, 0.0, 0.0, spec.psf_fwhm)
        flux = float(np.clip(target / snr(unit, spec.sigma), RANGES["flux"].low,
                             RANGES["flux"].high))
        applied = spec.shear * np.array([np.cos(2 * direction), np.sin(2 * direction)])
        for a in range(spec.angles):
            angle = 180.0 * a / spec.angles
            for sign in (1, -1):
                g = sign * applied
                clean = draw_row(gal, flux, angle, g[0], g[1], spec.psf_fwhm)
                g_tot = (total_shear(gal.intrinsic_shear(), angle, g) if gal.kind == SERSIC
                         else (np.nan, np.nan))
                row_snr = float(snr(clean, spec.sigma))
                for r in range(spec.realizations):
                    noisy = paired_noise(clean, spec.sigma, _noise_seed(seed, gal.index, a, r))
                    values = dict(img=noisy, img_nonoise=clean, snr=row_snr,
                                  label=[flux, gal.sersic_n, gal.r, g[0], g[1]], g_total=g_tot,
                                  kind=gal.kind, in_box=_in_box(gal, flux, row_snr, g_tot),
                                  galaxy=gal.index, angle=angle, realization=r, sign=sign,
                                  bulge_fraction=gal.bulge_fraction)
                    for key, value in values.items():
                        rows[key].append(value)
    # a galaxy is inside the box when every row of its ring is: the ring stays whole
    galaxy, inside = np.asarray(rows["galaxy"]), np.asarray(rows["in_box"])
    rows["in_box"] = [bool(inside[galaxy == g].all()) for g in galaxy]
    record = recipe_record(spec, seed)
    with atomic_h5(out, force=force) as f:
        fields = files.create_dataset_fields(f, n, shared_psf=True)
        fields["psf_img"][0] = _psf(spec.psf_fwhm).drawImage(
            nx=IMAGE_SIZE, ny=IMAGE_SIZE, scale=PIXEL_SCALE).array
        for key in ("img", "img_nonoise", "label", "snr"):
            fields[key][:] = np.asarray(rows[key], np.float32)
        fields["psf_fwhm"][:], fields["sigma"][:] = spec.psf_fwhm, spec.sigma
        for key in EXTRA_FIELDS:
            f.create_dataset(key, data=np.asarray(rows[key]))
        f["kind"].attrs["names"] = json.dumps(KINDS)
        files.write_attrs(f, seed, record)
    return out


def load_extra(path) -> dict[str, np.ndarray]:
    """The extra per-row fields of a `cosmos` file (`EXTRA_FIELDS`), checked to be there."""
    import h5py
    path = Path(path)
    with h5py.File(path, "r") as f:
        missing = [k for k in EXTRA_FIELDS if k not in f]
        if missing:
            raise files.FileFormatError(f"{path}: not a cosmos set (missing {', '.join(missing)})")
        return {k: f[k][()] for k in EXTRA_FIELDS}
