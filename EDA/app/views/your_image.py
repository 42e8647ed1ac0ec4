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
from galaxies.interfaces import app_cutouts, app_support as support, plots
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
psf_upload = st.file_uploader("PSF image (FITS, optional: replaces the Moffat for a FITS cutout)",
                              type=["fits", "fit", "fts", "gz"], max_upload_size=2, key="up_psf_file")

examples = app_cutouts.real_cutout_examples()
st.write("Or one of the repository's real HST cutouts (Abell 2744, WFC3/IR F105W, with its PSF "
         "image; tests/data/hst/README.md):")
for column, (example_name, (path, psf_path)) in zip(st.columns(len(examples) or 1), examples.items()):
    if column.button(example_name.removeprefix("a2744_f105w_"), key=f"up_real_{example_name}"):
        st.session_state["up_real"] = example_name

example = ui.render(**support.GalaxyParameters().as_dict())["noisy"]
st.download_button("Download an example cutout (.npy: the test galaxy, σ = 200, PSF 0.5″)",
                   uploads.cutout_bytes(example), file_name="example_cutout.npy",
                   mime="application/octet-stream", key="up_example")
chosen_example = st.session_state.get("up_real")
if upload is not None:
    content, name = upload.getvalue(), upload.name
    psf = (psf_upload.getvalue(), psf_upload.name) if psf_upload is not None else None
elif chosen_example in examples:
    path, psf_path = examples[chosen_example]
    content, name = path.read_bytes(), path.name
    psf = (psf_path.read_bytes(), psf_path.name) if psf_path else None
    border_noise = True  # a real cutout's noise is its own: measured from the border
    st.caption(f"Example: {name}, with {psf_path.name if psf_path else 'the Moffat above'}; "
               f"noise from the border.")
else:
    st.info("Upload a cutout, or choose a real one above, to see the estimates.")
    st.stop()


@st.cache_data(max_entries=32, show_spinner="Measuring ...")
def measured(data: bytes, name: str, scale: float, psf_fwhm: float, sigma, fit: bool, psf):
    return app_cutouts.measure_fits_upload(data, name, scale, psf_fwhm, sigma, fit=fit, psf=psf)


is_fits = name.lower().endswith(uploads.CUTOUT_SUFFIXES[2:]) or content[:9] == b"SIMPLE  ="
measurement = None
try:
    if is_fits and len(content) <= uploads.MAX_UPLOAD_BYTES:
        noise = None if border_noise else float(sigma)
        measurement = measured(content, name, float(scale), float(psf_fwhm), noise, False, psf)
        image, sigma = measurement.stamp.astype(np.float32), measurement.sigma_stamp
        psf_fwhm = measurement.psf_fwhm_stamp  # the network's convention on the stamp
    else:
        image = uploads.read_cutout(content, name)
except GalaxiesError as err:
    st.error(f"This file cannot be used: {err}")
    st.stop()

if measurement is not None:
    c = measurement.cutout
    st.caption(f"{c.image.shape[0]} × {c.image.shape[1]} pixels of {support.number(c.pixel_scale)}″; "
               f"background {support.number(measurement.background)} subtracted; noise σ "
               f"{support.number(measurement.sigma)} ({measurement.sigma_source}); on the resampled 64 × 64 "
               f"stamp at 0.23″ the networks are given σ {support.number(sigma)} (white noise of the same "
               f"information; its correlated pixels have {support.number(measurement.pixel_sigma_stamp)}) "
               + (f"and a PSF FWHM of {psf_fwhm:.3g}″ (the Moffat matching the resampled PSF)"
                  if np.isfinite(psf_fwhm) else "and no PSF FWHM (no Moffat matches the "
                  "resampled PSF)"))
    if measurement.flags:
        st.warning("Outside the training domain: " + "; ".join(FLAGS[f] for f in measurement.flags))
    if st.button("Fit at the cutout's own pixels (maximum likelihood)", key="up_native_fit"):
        st.session_state["up_native"] = (name, measured(content, name, float(scale), float(psf_fwhm),
                                                        noise, True, psf))
    stored = st.session_state.get("up_native")
    if stored and stored[0] == name:
        fitted = stored[1]
        ui.show_images([fitted.data, fitted.model, fitted.data - fitted.model],
                       ["data (background subtracted)", "model of the estimate", "residual"],
                       symmetric=(2,))
        st.table(support.estimates_table(None, {"fit (own pixels)": (fitted.params, fitted.std)})
                 .style.format(support.number))
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
stats.metric("sum of pixels", support.number(image.sum()))
stats.metric("peak", support.number(image.max()))

ui.estimates(image, psf_fwhm, sigma, truth=None, key="upload")
