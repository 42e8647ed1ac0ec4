"""Widgets and cached computations shared by the explorer's pages.

The logic lives in `galaxies.interfaces.app_support`; this module only binds it to Streamlit: the galaxy
parameters in the sidebar (kept when the user switches pages), caches around rendering and
model loading, and the block of estimates that the Models and Your-image pages share.
"""
from __future__ import annotations

import hashlib
import math
import time

import numpy as np
import streamlit as st

from galaxies.conventions import RANGES
from galaxies.interfaces import app_support as support, plots
from galaxies.runtime import profiles
from galaxies.runtime.errors import ParameterRangeError

SHAPE_MODES = ("axis ratio q and angle β", "shear g1, g2")

_TEST = support.GalaxyParameters()
DEFAULTS = {
    "flux": float(_TEST.flux), "sersic_n": float(_TEST.sersic_n), "sersic_r": float(_TEST.sersic_r),
    "shape_mode": SHAPE_MODES[0], "q": round(_TEST.q, 2), "beta": float(round(_TEST.beta_deg)),
    "g1": float(_TEST.g1), "g2": float(_TEST.g2), "psf_fwhm": float(_TEST.psf_fwhm),
    "sigma": float(_TEST.sigma), "seed": int(_TEST.seed),
}


# ------------------------------------------------------------------ the sidebar's state

def _store(key: str) -> None:
    st.session_state[key] = st.session_state[f"_w_{key}"]


def _bound(widget, label: str, key: str, **kwargs):
    """A widget whose value outlives pages that do not draw it.

    Streamlit forgets a widget's value when a run does not draw it (another page); the value
    is kept under ``key`` and copied into the widget's own key before each drawing.
    """
    if key not in st.session_state:
        st.session_state[key] = DEFAULTS[key]
    st.session_state[f"_w_{key}"] = st.session_state[key]
    return widget(label, key=f"_w_{key}", on_change=_store, args=(key,), **kwargs)


def profile_selector() -> str:
    """The profile whose data, models and predictions the pages show (sidebar)."""
    names = list(profiles.PROFILES)
    if "profile" not in st.session_state:
        st.session_state["profile"] = support.default_profile()
    st.session_state["_w_profile"] = st.session_state["profile"]
    return st.sidebar.selectbox("profile", names, key="_w_profile", on_change=_store,
                                args=("profile",),
                                help="Which data sets, models and predictions to show "
                                     "(data/<profile>, models/<profile>, results/<profile>).")


def current_profile() -> str:
    return st.session_state.get("profile") or support.default_profile()


def galaxy_parameters() -> support.GalaxyParameters:
    """The simulator's sliders (sidebar), as checked parameters; stops the page with a plain
    message when they are out of range."""
    side = st.sidebar
    side.markdown("### Galaxy")
    flux = _bound(side.slider, "flux [e⁻]", "flux", min_value=RANGES["flux"].low,
                  max_value=RANGES["flux"].high, step=1000.0, format="%.0f")
    sersic_n = _bound(side.slider, "Sérsic index n", "sersic_n",
                      min_value=RANGES["sersic_n"].low, max_value=RANGES["sersic_n"].high,
                      step=0.05)
    sersic_r = _bound(side.slider, "half-light radius r [arcsec]", "sersic_r",
                      min_value=RANGES["sersic_r"].low, max_value=RANGES["sersic_r"].high,
                      step=0.01)
    mode = _bound(side.radio, "shape given as", "shape_mode", options=SHAPE_MODES)
    if mode == SHAPE_MODES[0]:
        q_low = (1 - RANGES["shear"].high) / (1 + RANGES["shear"].high)
        q = _bound(side.slider, "axis ratio q = b/a", "q", min_value=math.ceil(q_low * 100) / 100,
                   max_value=1.0, step=0.01)
        beta = _bound(side.slider, "orientation β [deg]", "beta", min_value=0.0,
                      max_value=179.0, step=1.0, format="%.0f")
        shape = {"q": q, "beta_deg": beta}
    else:
        limit = RANGES["shear"].high
        g1 = _bound(side.slider, "shear g1", "g1", min_value=-limit, max_value=limit, step=0.005)
        g2 = _bound(side.slider, "shear g2", "g2", min_value=-limit, max_value=limit, step=0.005)
        shape = {"g1": g1, "g2": g2}
    side.markdown("### Observation")
    psf_fwhm = _bound(side.slider, "PSF FWHM [arcsec]", "psf_fwhm",
                      min_value=RANGES["psf_fwhm"].low, max_value=RANGES["psf_fwhm"].high,
                      step=0.01)
    sigma = _bound(side.slider, "read noise σ [e⁻/pixel]", "sigma",
                   min_value=RANGES["sigma"].low, max_value=RANGES["sigma"].high, step=5.0)
    seed = _bound(side.number_input, "noise seed", "seed", min_value=1, max_value=2**31 - 1,
                  step=1)
    others = dict(flux=flux, sersic_n=sersic_n, sersic_r=sersic_r, psf_fwhm=psf_fwhm,
                  sigma=sigma, seed=int(seed))
    try:
        if "q" in shape:
            params = support.GalaxyParameters.from_ellipticity(shape["q"], shape["beta_deg"],
                                                               **others)
        else:
            params = support.GalaxyParameters(g1=shape["g1"], g2=shape["g2"], **others)
        return params.check()
    except (ParameterRangeError, ValueError) as err:
        st.error(f"These parameters cannot be simulated: {err}")
        st.stop()


# ------------------------------------------------------------------------------ caches

@st.cache_data(max_entries=2048, show_spinner=False)
def render(flux, sersic_n, sersic_r, g1, g2, psf_fwhm, sigma, seed) -> dict:
    """The images of one galaxy (cached: moving a slider back costs nothing)."""
    galaxy = support.render(support.GalaxyParameters(flux, sersic_n, sersic_r, g1, g2,
                                                     psf_fwhm, sigma, seed))
    return {"clean": galaxy.clean, "noisy": galaxy.noisy, "psf": galaxy.psf,
            "noise": galaxy.noise, "snr": galaxy.snr}


def render_params(params: support.GalaxyParameters) -> tuple[dict, float]:
    """`render` of ``params`` and the seconds it took (near 0 when cached)."""
    start = time.perf_counter()
    images = render(**params.as_dict())
    return images, time.perf_counter() - start


def show_images(images: list, captions: list, mode: str = "linear", width: int = 220,
                symmetric: tuple = ()) -> None:
    """Images side by side, each on its own colour scale (``symmetric``: their indices)."""
    columns = st.columns(len(images))
    for k, (column, image, caption) in enumerate(zip(columns, images, captions)):
        column.image(plots.to_rgb(image, mode, symmetric=k in symmetric,
                                  cmap="RdBu_r" if k in symmetric else "magma"),
                     caption=caption, width=width)


@st.cache_resource(max_entries=4, show_spinner="Loading the model ...")
def load_model(path: str, modified: float):
    """An estimator (`galaxies.evaluation.estimators`; kept in memory, ``modified`` makes a retrained
    one reload)."""
    return support.load_estimator(path)


@st.cache_data(max_entries=256, show_spinner=False)
def fit_image(image_bytes: bytes, psf_fwhm: float, sigma: float):
    """The maximum-likelihood fit of an image (cached by its bytes)."""
    image = np.frombuffer(image_bytes, dtype=np.float32).reshape(64, 64)
    return support.maximum_likelihood(image, psf_fwhm, sigma)


@st.cache_data(max_entries=256, show_spinner=False)
def refine_image(image_bytes: bytes, psf_fwhm: float, sigma: float, start: tuple, steps: int):
    """The refinement of an image from ``start`` (cached by its bytes)."""
    image = np.frombuffer(image_bytes, dtype=np.float32).reshape(64, 64)
    return support.refined(image, psf_fwhm, sigma, start, steps)


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards), for caching and `st.image`."""
    import io

    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def show_figure(fig) -> None:
    import matplotlib.pyplot as plt
    st.pyplot(fig, clear_figure=True)
    plt.close(fig)


# --------------------------------------------------------------------------- estimates

def estimates(image: np.ndarray, psf_fwhm: float, sigma: float, truth=None,
              key: str = "estimates") -> None:
    """Estimates of the five parameters of ``image``: a saved model's, its refinement by a few
    Gauss-Newton steps of the likelihood and, on demand, the maximum-likelihood fit's, next to
    the truth when known."""
    profile = current_profile()
    found: dict = {}
    models = support.list_saved_models(profile)
    if not models:
        st.info(support.no_model_message(profile))
    else:
        best = profiles.get(profile).recommended
        chosen = st.selectbox("saved model", models, index=support.recommended_index(models, profile),
                              key=f"{key}_model", format_func=lambda p: p.name + (
                                  " (recommended)" if p.name == best else ""))
        try:
            model = load_model(str(chosen), chosen.stat().st_mtime)
            found[chosen.name] = support.predict_one(model, image, psf_fwhm, sigma)
            steps = st.number_input("Gauss-Newton steps of the likelihood from the network's "
                                    "estimate", 1, 5, 2, key=f"{key}_steps")
            params, std, flags, seconds = refine_image(
                np.ascontiguousarray(image, np.float32).tobytes(), float(psf_fwhm), float(sigma),
                tuple(found[chosen.name][0]), int(steps))
            found[f"{chosen.name} + {steps} steps"] = (params, std)
            st.caption(f"Refined in {seconds:.3f} s of CPU"
                       + (f"; flags: {', '.join(flags)}" if flags else "; no flags") + ".")
        except support.Unavailable as err:
            st.info(f"{err}. {support.no_model_message(profile)}")
        except Exception as err:  # a model the app cannot use must not break the page
            st.error(f"The model {chosen.name} could not be used: {type(err).__name__}: {err}")
    image32 = np.ascontiguousarray(image, dtype=np.float32)
    ident = hashlib.sha1(image32.tobytes() + np.array([psf_fwhm, sigma]).tobytes()).hexdigest()
    if st.button("Fit by maximum likelihood (L-BFGS-B)", key=f"{key}_fit_button"):
        try:
            with st.spinner("Fitting ..."):
                st.session_state[f"{key}_fit"] = (ident, fit_image(image32.tobytes(),
                                                                   float(psf_fwhm), float(sigma)))
        except Exception as err:
            st.error(f"The fit failed: {type(err).__name__}: {err}")
    stored = st.session_state.get(f"{key}_fit")
    if stored and stored[0] == ident:
        params, converged, seconds = stored[1]
        found["maximum likelihood"] = (params, None)
        st.caption(f"Maximum-likelihood fit: {seconds:.2f} s, "
                   f"{'converged' if converged else 'did NOT converge'}.")
    if found or truth is not None:
        table = support.estimates_table(truth, found)
        st.table(table.style.format(support.number))
