"""Simulator: one galaxy from the sliders, with its noise, PSF and SNR."""
import explorer_ui as ui
import streamlit as st

from galaxies.interfaces import app_support as support

st.title("Simulator")
st.caption("A Sérsic galaxy, sheared, seen through a Moffat PSF (β = 2) on 64 × 64 pixels of "
           "0.23″, with Poisson noise and Gaussian read noise σ. Move the sliders on the left.")

params = ui.galaxy_parameters()
images, seconds = ui.render_params(params)

mode = st.radio("stretch", ("linear", "log"), horizontal=True, key="sim_stretch",
                help="log: asinh of the image in units of its standard deviation, which "
                     "shows the faint wings and the noise.")
ui.show_images([images["clean"], images["noisy"], images["noise"], images["psf"]],
               ["noiseless", "noisy (what an estimator sees)", "noise only (noisy − noiseless)",
                f"PSF (FWHM {params.psf_fwhm:.2f}″)"], mode=mode, symmetric=(2,))

snr = images["snr"]
kept, verdict = support.snr_verdict(snr)
cols = st.columns(6)
cols[0].metric("SNR", f"{snr:.1f}")
cols[1].metric("g1", f"{params.g1:+.3f}")
cols[2].metric("g2", f"{params.g2:+.3f}")
cols[3].metric("axis ratio q", f"{params.q:.3f}")
cols[4].metric("orientation β", f"{params.beta_deg:.1f}°")
cols[5].metric("flux in the cutout", f"{100 * images['clean'].sum() / params.flux:.1f}%",
               help="The share of the total flux inside the 64 × 64 cutout: less than 100% "
                    "when the galaxy's wings extend beyond it (large r, large n).")
(st.success if kept else st.warning)(verdict)
st.caption(f"SNR = √Σ noiseless² / σ. Drawn in {1000 * seconds:.0f} ms "
           "(cached images come back in under 1 ms; a Sérsic index not seen before costs "
           "GalSim tens of ms for its Hankel table).")
