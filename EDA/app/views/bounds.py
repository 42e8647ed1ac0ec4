"""Bounds: how precisely the sliders' galaxy can be measured at all (Cramér–Rao), and how
visible each parameter is against the noise."""
import explorer_ui as ui
import streamlit as st

from galaxies.conventions import LABEL_WIDTHS
from galaxies.interfaces import app_support as support, plots

st.title("Bounds")
st.caption("The Cramér–Rao bound is the smallest standard deviation any unbiased estimator "
           "can reach for this galaxy and noise; an estimator near it cannot be beaten.")

params = ui.galaxy_parameters()
images, _ = ui.render_params(params)


@st.cache_data(max_entries=256, show_spinner="Computing the Cramér–Rao bound ...")
def bounds(values: dict):
    return support.bounds_table(support.GalaxyParameters(**values))


@st.cache_data(max_entries=256, show_spinner="Computing the bounds over SNR ...")
def bounds_over_snr(values: dict):
    return support.bounds_versus_snr(support.GalaxyParameters(**values))


@st.cache_data(max_entries=256, show_spinner=False)
def visibility(values: dict):
    return support.visibility(support.GalaxyParameters(**values))


values = params.as_dict()
try:
    table = bounds(values)
except Exception as err:  # the bound can fail for extreme parameters; say so plainly
    st.error(f"The Cramér–Rao bound could not be computed here: {type(err).__name__}: {err}")
else:
    st.subheader(f"Cramér–Rao bound at SNR {images['snr']:.1f}")
    st.table(table.style.format(support.number))
    st.subheader("The bound as the SNR changes")
    try:
        curve = bounds_over_snr(values)
        ui.show_figure(plots.bounds_vs_snr(curve, widths=LABEL_WIDTHS,
                                           current=images["snr"]))
        st.caption("The same galaxy with the read noise σ changed so that its SNR runs "
                   "from 10 to 100; each bound is divided by the parameter's simulated "
                   "range. Dashed: the SNR of the sliders' σ. All bounds scale as 1/SNR "
                   "(read noise dominates the Poisson noise).")
    except Exception as err:
        st.error(f"The bounds over SNR could not be computed: {type(err).__name__}: {err}")

st.subheader("How visible is each parameter?")
st.table(visibility(values).style.format(support.number))
st.caption("`change / noise`: how far a step of 10% of the parameter's range moves the image, "
           "in units of the pixel noise (below ~1 it is lost in one image's noise). "
           "`unique share`: the part of that change the other four parameters cannot mimic. "
           "Their product is what is left to measure the parameter by: the Sérsic index n "
           "usually has the least.")
