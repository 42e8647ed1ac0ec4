"""Your image: upload a 64 x 64 cutout and get the estimators' estimates."""
import streamlit as st

import explorer_ui as ui
from galaxies import app_support as support
from galaxies import cutouts, plots
from galaxies.simulate import RANGES

st.title("Your image")
st.caption("A 64 × 64 cutout in photo-electrons with 0.23″ pixels, as NumPy (.npy, or .npz "
           "holding one array) or FITS (the first image HDU). Give its read noise and PSF.")

left, right = st.columns(2)
sigma = left.number_input("read noise σ [e⁻/pixel]", min_value=1.0, max_value=1e5, value=200.0,
                          step=10.0, key="up_sigma")
psf_fwhm = right.number_input("PSF FWHM [arcsec]", min_value=0.1, max_value=3.0, value=0.5,
                              step=0.05, key="up_psf")
upload = st.file_uploader("cutout", type=sorted({s.split(".")[-1] for s in cutouts.CUTOUT_SUFFIXES}),
                          max_upload_size=2, key="up_file")

example = ui.render(**support.GalaxyParameters().as_dict())["noisy"]
st.download_button("Download an example cutout (.npy: the test galaxy, σ = 200, PSF 0.5″)",
                   cutouts.cutout_bytes(example), file_name="example_cutout.npy",
                   mime="application/octet-stream", key="up_example")
if upload is None:
    st.info("Upload a cutout to see the estimates.")
    st.stop()

try:
    image = cutouts.read_cutout(upload.getvalue(), upload.name)
except cutouts.CutoutError as err:
    st.error(f"This file cannot be used: {err}")
    st.stop()

outside = [f"{name} = {value:g} is outside the training range [{RANGES[name].low:g}, "
           f"{RANGES[name].high:g}]" for name, value in (("sigma", sigma), ("psf_fwhm", psf_fwhm))
           if value not in RANGES[name]]
if outside:
    st.warning("; ".join(outside) + ": the estimates extrapolate.")

mode = st.radio("stretch", ("linear", "log"), horizontal=True, key="up_stretch")
shown, stats = st.columns([1, 2])
shown.image(plots.to_rgb(image, mode), caption=upload.name, width=256)
stats.metric("approximate SNR", f"{support.approximate_snr(image, sigma):.1f}",
             help="√(Σ image² − 64² σ²) / σ: the read noise's share removed.")
stats.metric("sum of pixels", f"{image.sum():.4g} e⁻")
stats.metric("peak", f"{image.max():.4g} e⁻")

ui.estimates(image, psf_fwhm, sigma, truth=None, key="upload")
