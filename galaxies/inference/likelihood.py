"""The likelihood the fit, the refinement and the bound share: GalSim model images of a galaxy.

The model of a noisy image ``d`` (photo-electrons) is ``mu(theta) = flux * u(n, r, g1, g2)``,
the noiseless GalSim image, plus the generator's noise (Poisson counts and Gaussian read noise
``sigma``), approximated by a Gaussian of variance ``V = sigma^2 + mu`` per pixel; the negative
log-likelihood is ``1/2 sum_p (d_p - mu_p)^2 / V_p`` (see `galaxies.inference.galsim_fit` for how the fit
holds V and `galaxies.inference.crb` for the bound).

How it is made fast (against a plain L-BFGS-B fit with finite differences)
------------------------------------------------------------------------
* **Flux is profiled out.** ``mu`` is linear in the flux, so for given shape parameters the
  best flux is a weighted least-squares ratio (no render); L-BFGS-B works on the four shape
  parameters and the flux-shape degeneracy no longer slows it.
* **Sérsic index on a grid of GalSim profiles.** GalSim builds a Hankel table for every new
  index n (many times the cost of an image with a known index), so an optimizer moving n
  continuously pays a new table at each step. Here ``u`` at index n is the cubic (Catmull-Rom,
  continuous slope) interpolation between the profiles at the four nearest nodes of a grid of
  spacing `NODE_SPACING` in n: each node's table is built once per process, then reused by
  every later fit. The model is still GalSim's image, drawn at every step (a `galsim.Sum` of the
  weighted node profiles, dilated, sheared, convolved with the PSF and the pixel); the
  interpolation error is ~1e-5 of the image, GalSim's own accuracy, which moves an estimate by
  under 0.1% of its Cramér–Rao bound at SNR 100. Its derivative in n is exact.
* **Gradients from image derivatives.** The gradient is ``flux * J^T dNLL/dmu`` (envelope
  theorem for the profiled flux) with ``J`` the derivatives of the unit image: exact in n,
  one-sided differences of renders in r, g1 and g2 with steps of 1e-5 (renders are smooth to
  ~1e-12, so these are exact for all purposes).
* **FFT sizes under control.** GalSim sizes its FFT from the profile, so the image jumps by
  ~1e-5 of itself where that size changes: harmless for accuracy, but fatal to a difference
  taken across the jump, and a line search can stall on it. All renders of one evaluation
  share one size, and after a failed line search the fit restarts from where it stopped with
  the largest size met held as the minimum.
"""
from __future__ import annotations

import math

import numpy as np

from galaxies.conventions import GALSIM_SERSIC_N, IMAGE_SIZE, PIXEL_SCALE, RANGES
from galaxies.simulation.render import GalaxyRenderer, Stamp, _MemoizedKProfile, default_renderer

__all__ = ["NODE_SPACING", "BOUNDS", "FLUX_RANGE", "SersicModel", "Objective", "weighted_flux"]

#: Spacing of the Sérsic-index grid whose GalSim profiles the model interpolates.
NODE_SPACING = 0.1

# The box L-BFGS-B searches (n, r, g1, g2) and the flux range the profiled flux is kept in.
BOUNDS = np.array([[RANGES["sersic_n"].low, RANGES["sersic_n"].high],
                    [RANGES["sersic_r"].low, RANGES["sersic_r"].high],
                    [-RANGES["shear"].high, RANGES["shear"].high],
                    [-RANGES["shear"].high, RANGES["shear"].high]])
FLUX_RANGE = (RANGES["flux"].low, RANGES["flux"].high)


# ------------------------------------------------------------------------------ the model

_NODES: dict[tuple[float, int], object] = {}


def _node_profile(spacing: float, k: int):
    """Unit-flux, unit-half-light-radius Sérsic profile at index ``k * spacing`` (cached)."""
    import galsim
    key = (spacing, k)
    profile = _NODES.get(key)
    if profile is None:
        profile = _NODES[key] = galsim.Sersic(round(k * spacing, 10), half_light_radius=1.0)
    return profile


class SersicModel:
    """Unit-flux model images ``u(n, r, g1, g2)`` for one PSF, drawn by GalSim.

    ``u`` at index n interpolates (Catmull-Rom, C1) between the profiles at the four nearest
    nodes ``k * spacing`` of a grid; everything else (shear, size, PSF, pixel) is GalSim's own
    drawing. Images are (64, 64) float64, photo-electrons per unit flux, on the simulation's
    stamp; a `galaxies.simulation.render.Stamp` draws them at a cutout's own pixel scale, shape, PSF (a
    GalSim profile, ``psf_fwhm`` then only names it; None allowed) and centre offset instead.
    """

    def __init__(self, psf_fwhm: float | None, spacing: float = NODE_SPACING,
                 renderer: GalaxyRenderer | None = None, stamp: Stamp | None = None):
        renderer = renderer or default_renderer()
        self.stamp = stamp if stamp is not None and not stamp.is_default else None
        self.psf_fwhm = float("nan") if psf_fwhm is None else float(psf_fwhm)
        if stamp is not None and stamp.psf is not None:
            self.psf = _MemoizedKProfile(stamp.psf)
        else:
            self.psf = renderer.psf(self.psf_fwhm)
        #: pixel scale (arcsec) and shape (ny, nx) of the images
        self.pixel_scale = PIXEL_SCALE if stamp is None else float(stamp.pixel_scale)
        self.shape = (IMAGE_SIZE, IMAGE_SIZE) if stamp is None else tuple(map(int, stamp.shape))
        self.spacing = float(spacing)
        self.renders = 0
        #: smallest FFT size GalSim may use (None: its own choice); see `fit_image`
        self.fft_size: int | None = None
        lo, hi = GALSIM_SERSIC_N
        self._kmin = math.ceil(lo / self.spacing - 1e-9)
        self._kmax = math.floor(hi / self.spacing + 1e-9)

    def stencil(self, n: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Node indices (4,), interpolation weights (4,) and their derivatives in n (4,)."""
        x = n / self.spacing
        k = min(max(math.floor(x), self._kmin + 1), self._kmax - 2)
        t = x - k
        nodes = np.arange(k - 1, k + 3)
        t2, t3 = t * t, t * t * t
        w = 0.5 * np.array([-t3 + 2 * t2 - t, 3 * t3 - 5 * t2 + 2, -3 * t3 + 4 * t2 + t, t3 - t2])
        dw = 0.5 * np.array([-3 * t2 + 4 * t - 1, 9 * t2 - 10 * t, -9 * t2 + 8 * t + 1,
                             3 * t2 - 2 * t]) / self.spacing
        return nodes, w, dw

    def _convolve(self, galaxy):
        import galsim
        if self.fft_size is None:
            return galsim.Convolve(galaxy, self.psf)
        gsparams = _fft_gsparams(self.fft_size)
        return galsim.Convolve(galaxy, self.psf, gsparams=gsparams, propagate_gsparams=False)

    def _draw(self, galaxy) -> np.ndarray:
        import galsim
        if self.stamp is not None:
            self.renders += 1
            return self.stamp.draw(self._convolve(galaxy))
        image = galsim.ImageD(IMAGE_SIZE, IMAGE_SIZE, scale=PIXEL_SCALE)
        self._convolve(galaxy).drawImage(image=image)
        self.renders += 1
        return image.array

    def _galaxy(self, n, r, g1, g2):
        import galsim
        nodes, w, _ = self.stencil(n)
        parts = [_node_profile(self.spacing, int(k)).withScaledFlux(float(wk))
                 for k, wk in zip(nodes, w) if wk != 0.0]  # at a node, one profile
        galaxy = parts[0] if len(parts) == 1 else galsim.Sum(parts)
        return galaxy.dilate(float(r)).shear(g1=float(g1), g2=float(g2))

    def galsim_fft_size(self, n, r, g1, g2) -> int:
        """The FFT size GalSim picks by itself to draw the model at these parameters."""
        import galsim
        profile = galsim.Convolve(self._galaxy(n, r, g1, g2), self.psf)
        size = max(profile.getGoodImageSize(self.pixel_scale), max(self.shape))
        return max(galsim.Image.good_fft_size(size), profile.gsparams.minimum_fft_size)

    @property
    def minimum_fft_size(self) -> int:
        """The FFT size GalSim uses at least for this stamp (twice its side, 128 for 64)."""
        import galsim
        return max(128, galsim.Image.good_fft_size(2 * max(self.shape)))

    def image(self, n, r, g1, g2) -> np.ndarray:
        """The model image (one GalSim render of the interpolated profile)."""
        return self._draw(self._galaxy(n, r, g1, g2))

    def image_and_dn(self, n, r, g1, g2) -> tuple[np.ndarray, np.ndarray]:
        """The model image and its exact derivative in n (four GalSim renders)."""
        nodes, w, dw = self.stencil(n)
        renders = [self._draw(_node_profile(self.spacing, int(k)).dilate(float(r))
                              .shear(g1=float(g1), g2=float(g2))) for k in nodes]
        stack = np.stack(renders)
        return np.tensordot(w, stack, 1), np.tensordot(dw, stack, 1)


_GSPARAMS: dict[int, object] = {}


def _fft_gsparams(size: int):
    import galsim
    if size not in _GSPARAMS:
        _GSPARAMS[size] = galsim.GSParams(minimum_fft_size=int(size))
    return _GSPARAMS[size]


# ---------------------------------------------------------------------------- likelihood

def weighted_flux(u: np.ndarray, d: np.ndarray, weight: np.ndarray, flux_range=FLUX_RANGE):
    """Flux minimizing ``chi2 = sum w (d - flux u)^2`` (closed form, kept in ``flux_range``);
    returns ``(flux, chi2 / 2, d(chi2/2)/dmu)``."""
    wu = weight * u
    flux = float(np.dot(wu, d) / np.dot(wu, u))
    flux = min(max(flux, flux_range[0]), flux_range[1])
    res = d - flux * u
    return flux, 0.5 * float(np.dot(weight * res, res)), -weight * res


class Objective:
    """Profiled NLL of the shape parameters ``theta = (n, r, g1, g2)`` and its gradient.

    L-BFGS-B sees scaled parameters ``x = theta / scale``. The last evaluation is kept, so the
    scale and the offset can be set from the first one at no extra cost.

    ``sigma`` is the read noise, one number or a map of the image's shape (``inf`` masks a
    pixel); the Poisson variance is ``mu / gain`` (``gain`` counts to photo-electrons; None:
    no Poisson term). ``bounds`` is the box of ``theta`` (4, 2), ``flux_range`` the profiled
    flux's; the defaults are the simulation's.
    """

    #: one-sided difference steps for r (arcsec), g1 and g2: renders are smooth to ~1e-12, so
    #: tiny steps make the differences exact for all purposes (truncation error ~1e-6)
    steps = np.array([1e-5, 1e-5, 1e-5])

    def __init__(self, model: SersicModel, data: np.ndarray, sigma, gain: float | None = 1.0,
                 bounds: np.ndarray = BOUNDS, flux_range=FLUX_RANGE):
        self.model = model
        self.d = np.asarray(data, dtype=np.float64).ravel()
        self.sigma2 = float(sigma) ** 2 if np.ndim(sigma) == 0 else (
            np.asarray(sigma, dtype=np.float64).ravel() ** 2)
        self.gain, self.bounds, self.flux_range = gain, np.asarray(bounds, float), flux_range
        self.scale = np.ones(4)
        self.offset = 0.0  # NLL at the start, subtracted so L-BFGS-B's ftol is relative to O(1)
        self.calls = 0
        self._last = None
        #: smallest FFT size of every render (GalSim's own minimum; raised after a failed
        #: line search, see `fit_image`)
        self.fft_size = 128 if model.stamp is None else model.minimum_fft_size
        self.largest_fft = 0
        #: 1 / pixel variance; read noise alone until `set_variance`
        self.weight = np.broadcast_to(1.0 / self.sigma2, self.d.shape).copy()

    def _profile(self, u):
        return weighted_flux(u, self.d, self.weight, self.flux_range)

    def set_variance(self, theta) -> None:
        """Hold the pixel variance at ``sigma^2 + mu`` of the model at ``theta`` (with its
        profiled flux) until the next call."""
        u = self.model.image(*theta).ravel()
        flux, _, _ = self._profile(u)
        self.hold_variance(u, flux)

    def hold_variance(self, u: np.ndarray, flux: float) -> None:
        """Hold the pixel variance at ``sigma^2 + flux * u`` (a unit image already drawn)."""
        if self.gain is None:
            self.weight = np.broadcast_to(1.0 / self.sigma2, self.d.shape).copy()
        elif self.gain == 1.0:
            self.weight = 1.0 / (self.sigma2 + np.maximum(flux * u, 0.0))
        else:
            self.weight = 1.0 / (self.sigma2 + np.maximum(flux * u, 0.0) / self.gain)
        self._last = None

    def nll(self, theta) -> tuple[float, float]:
        """Profiled NLL and flux at ``theta`` (one render)."""
        self.model.fft_size = max(self.fft_size, self.model.galsim_fft_size(*theta))
        u = self.model.image(*theta).ravel()
        flux, nll, _ = self._profile(u)
        return nll, flux

    def evaluate(self, theta) -> dict:
        """NLL, flux, gradient, the unit image ``u`` and its derivatives ``jac`` (4, pixels)
        at ``theta``."""
        theta = np.asarray(theta, dtype=float)
        if self._last is not None and np.array_equal(self._last[0], theta):
            return self._last[1]
        # Every render of this evaluation uses one FFT size, the larger of the fit's and the
        # one GalSim wants here: the node renders and the differences must not differ by a
        # change of FFT size (~1e-5 of the image, which a 1e-5 step would turn into garbage).
        model = self.model
        model.fft_size = max(self.fft_size, model.galsim_fft_size(*theta))
        self.largest_fft = max(self.largest_fft, model.fft_size)
        u, du_dn = model.image_and_dn(*theta)
        u = u.ravel()
        flux, nll, g_mu = self._profile(u)
        jac = np.empty((4, u.size))
        jac[0] = du_dn.ravel()
        for j in range(1, 4):
            h = self.steps[j - 1]
            if theta[j] + h > self.bounds[j, 1]:
                h = -h
            shifted = theta.copy()
            shifted[j] += h
            jac[j] = (model.image(*shifted).ravel() - u) / h
        # envelope theorem: at the profiled flux, dNLL/dtheta = flux * (du/dtheta) . dNLL/dmu
        point = {"nll": nll, "flux": flux, "grad": flux * (jac @ g_mu), "u": u, "jac": jac}
        self._last = (theta, point)
        return point

    def curvature_scale(self, theta) -> np.ndarray:
        """Statistical error of each shape parameter with the others fixed: 1 / sqrt of the
        diagonal of the Fisher (Gauss-Newton) matrix at ``theta``, in label units."""
        point = self.evaluate(theta)
        curvature = point["flux"] ** 2 * (point["jac"] ** 2 @ self.weight)
        return 1.0 / np.sqrt(np.maximum(curvature, 1e-30))

    def __call__(self, x):
        self.calls += 1
        point = self.evaluate(x * self.scale)
        return point["nll"] - self.offset, point["grad"] * self.scale


