"""Your image: upload a cutout and get the estimators' estimates.

A .npy/.npz cutout must be the simulations' 64 x 64 stamp of 0.23" pixels. A FITS cutout may be
of any pixel scale and size: `galaxies.cutouts.measure` reads it (the pixel scale from its WCS),
subtracts the border's background, centres on the galaxy and resamples it to the simulations'
stamp for the networks; the fit runs at the cutout's own pixels, and its model and residual are
shown beside the data, with the flags of what lies outside the training domain.
"""
import explorer_ui as ui
import numpy as np
import streamlit as st

from galaxies.conventions import RANGES
from galaxies.cutouts import uploads
from galaxies.cutouts.measure import FLAGS
from galaxies.interfaces import app_support as support, plots
from galaxies.runtime.errors import GalaxiesError

st.title("Your image")
st.caption("A FITS cutout of any pixel scale and size (pixel scale from its WCS), or a 64 × 64 "
           "NumPy stamp (.npy, or .npz holding one array) in photo-electrons with 0.23″ pixels. "
           "Give its noise and PSF.")

left, middle, right = st.columns(3)
sigma = left.number_input("noise σ [counts/pixel]", min_value=1e-6, max_value=1e5, value=200.0,
                          step=10.0, key="up_sigma", format="%g")
psf_fwhm = middle.number_input("PSF FWHM [arcsec] (Moffat β = 2)", min_value=0.01, max_value=3.0,
                               value=0.5, step=0.05, key="up_psf")
scale = right.number_input("pixel scale [arcsec] (FITS without WCS)", min_value=0.001,
                           max_value=10.0, value=0.23, step=0.01, key="up_scale", format="%g")
border_noise = st.checkbox("FITS: estimate the noise from the border instead", key="up_border")
upload = st.file_uploader("cutout", type=sorted({s.split(".")[-1] for s in uploads.CUTOUT_SUFFIXES}),
                          max_upload_size=2, key="up_file")

example = ui.render(**support.GalaxyParameters().as_dict())["noisy"]
st.download_button("Download an example cutout (.npy: the test galaxy, σ = 200, PSF 0.5″)",
                   uploads.cutout_bytes(example), file_name="example_cutout.npy",
                   mime="application/octet-stream", key="up_example")
if upload is None:
    st.info("Upload a cutout to see the estimates.")
    st.stop()


@st.cache_data(max_entries=32, show_spinner="Measuring ...")
def measured(data: bytes, name: str, scale: float, psf_fwhm: float, sigma, fit: bool):
    return support.measure_fits_upload(data, name, scale, psf_fwhm, sigma, fit=fit)


content, name = upload.getvalue(), upload.name
is_fits = name.lower().endswith(uploads.CUTOUT_SUFFIXES[2:]) or content[:9] == b"SIMPLE  ="
measurement = None
try:
    if is_fits and len(content) <= uploads.MAX_UPLOAD_BYTES:
        noise = None if border_noise else float(sigma)
        measurement = measured(content, name, float(scale), float(psf_fwhm), noise, False)
        image, sigma = measurement.stamp.astype(np.float32), measurement.sigma_stamp
        psf_fwhm = measurement.psf_fwhm_stamp  # the network's convention on the stamp
    else:
        image = uploads.read_cutout(content, name)
except GalaxiesError as err:
    st.error(f"This file cannot be used: {err}")
    st.stop()

if measurement is not None:
    c = measurement.cutout
    st.caption(f"{c.image.shape[0]} × {c.image.shape[1]} pixels of {c.pixel_scale:.4g}″; "
               f"background {measurement.background:.4g} subtracted; noise σ "
               f"{measurement.sigma:.4g} ({measurement.sigma_source}); on the resampled 64 × 64 "
               f"stamp at 0.23″ the networks are given σ {sigma:.4g} (white noise of the same "
               f"information; its correlated pixels have {measurement.pixel_sigma_stamp:.4g}) "
               f"and a PSF FWHM of {psf_fwhm:.3g}″ (the Moffat matching the resampled PSF)")
    if measurement.flags:
        st.warning("Outside the training domain: " + "; ".join(FLAGS[f] for f in measurement.flags))
    if st.button("Fit at the cutout's own pixels (maximum likelihood)", key="up_native_fit"):
        st.session_state["up_native"] = (name, measured(content, name, float(scale), float(psf_fwhm),
                                                        noise, True))
    stored = st.session_state.get("up_native")
    if stored and stored[0] == name:
        fitted = stored[1]
        ui.show_images([fitted.data, fitted.model, fitted.data - fitted.model],
                       ["data (background subtracted)", "model of the estimate", "residual"],
                       symmetric=(2,))
        st.table(support.estimates_table(None, {"fit (own pixels)": (fitted.params, fitted.std)})
                 .style.format("{:.4g}"))
        st.caption(f"{'converged' if fitted.converged else 'did NOT converge'}; flags: "
                   f"{', '.join(fitted.flags) or 'none'}")
else:
    outside = [f"{n} = {v:g} is outside the training range [{RANGES[n].low:g}, "
               f"{RANGES[n].high:g}]" for n, v in (("sigma", sigma), ("psf_fwhm", psf_fwhm))
               if v not in RANGES[n]]
    if outside:
        st.warning("; ".join(outside) + ": the estimates extrapolate.")

mode = st.radio("stretch", ("linear", "log"), horizontal=True, key="up_stretch")
shown, stats = st.columns([1, 2])
shown.image(plots.to_rgb(image, mode), caption=name + (" (resampled)" if measurement else ""),
            width=256)
stats.metric("approximate SNR", f"{support.approximate_snr(image, sigma):.1f}",
             help="√(Σ image² − 64² σ²) / σ: the read noise's share removed.")
stats.metric("sum of pixels", f"{image.sum():.4g}")
stats.metric("peak", f"{image.max():.4g}")

ui.estimates(image, psf_fwhm, sigma, truth=None, key="upload")
