"""Data sets: pick a generated HDF5 file, filter it by label and SNR, browse its images."""
import explorer_ui as ui
import numpy as np
import streamlit as st

from galaxies.interfaces import app_support as support, plots
from galaxies.storage import files

PER_PAGE = 24

st.title("Data sets")
profile = ui.current_profile()
paths = support.list_datasets(profile)
if not paths:
    hint = "" if profile == "smoke" else (
        " Or choose the profile smoke in the sidebar to build its small sets here.")
    st.info(f"No data sets for profile {profile} yet: run `make datasets PROFILE={profile}` "
            f"(they are written to data/{profile}/).{hint}")
    if profile == "smoke" and st.button("Build the smoke data sets here (under a minute)"):
        from galaxies.simulation.recipes import build_datasets
        with st.spinner("Simulating the smoke data sets ..."):
            build_datasets(profile, jobs=1, progress=False, log=lambda message: None)
        st.rerun()
    st.stop()


@st.cache_data(max_entries=16, show_spinner="Reading the labels ...")
def labels(path: str, modified: float):
    ds = files.load_dataset(path, fields=())
    return ds.labels_frame(), ds.recipe


@st.cache_data(max_entries=64, show_spinner=False)
def images(path: str, modified: float, rows: tuple):
    ds = files.load_dataset(path, fields=("img", "img_nonoise"), rows=np.array(rows, dtype=np.int64))
    return ds.img, ds.img_nonoise


@st.cache_data(max_entries=64, show_spinner=False)
def histograms(path: str, modified: float, rows: tuple, title: str) -> bytes:
    """The selection's histograms as PNG (cached: paging through images does not redraw)."""
    frame, _ = labels(path, modified)
    return ui.figure_png(plots.label_histograms(frame.iloc[list(rows)], title=title))


path = st.selectbox("data set", paths, format_func=lambda p: p.stem, key="ds_file")
modified = path.stat().st_mtime
try:
    frame, recipe = labels(str(path), modified)
except (files.FileFormatError, OSError) as err:
    st.error(f"{path.name} cannot be read: {err}")
    st.stop()
st.caption(f"{path} · {len(frame)} galaxies · recipe: `{recipe}`")

ranges = {}
with st.expander("Filter by label and SNR", expanded=True):
    columns = [c for c in frame.columns if frame[c].nunique() > 1]
    if not columns:
        st.write("Every row has the same labels (a fixed-galaxy test set): rows differ only "
                 "by their noise.")
    grid = st.columns(3)
    for k, column in enumerate(columns):
        low, high = float(frame[column].min()), float(frame[column].max())
        ranges[column] = grid[k % 3].slider(plots.LABEL_NAMES.get(column, column), low, high,
                                            (low, high), key=f"ds_{path.stem}_{column}",
                                            format="%.3g")
rows = support.filter_rows(frame, ranges)
st.markdown(f"**{len(rows)} of {len(frame)} galaxies match.**")
if not len(rows):
    st.warning("No galaxy matches these ranges; widen a filter.")
    st.stop()

left, middle, right = st.columns(3)
kind = left.radio("show", ("noisy", "noiseless", "noise"), horizontal=True, key="ds_kind")
mode = middle.radio("stretch", ("linear", "log"), horizontal=True, key="ds_stretch")
pages = max(1, int(np.ceil(len(rows) / PER_PAGE)))
page = right.number_input(f"page (of {pages})", min_value=1, max_value=pages, value=1,
                          key="ds_page")
shown = rows[(page - 1) * PER_PAGE: page * PER_PAGE]
noisy, clean = images(str(path), modified, tuple(int(r) for r in shown))
stack = {"noisy": noisy, "noiseless": clean, "noise": noisy - clean}[kind]
selected = frame.iloc[shown]
captions = [f"#{row} n={n:.2f} r={r:.2f}″ SNR={s:.0f}" for row, n, r, s in
            zip(shown, selected["sersic_n"], selected["sersic_r"], selected["snr"])]
st.image([plots.to_rgb(im, mode, upscale=2, symmetric=kind == "noise",
                       cmap="RdBu_r" if kind == "noise" else "magma") for im in stack],
         caption=captions, width=128)

st.subheader("Distributions of the selection")
st.image(histograms(str(path), modified, tuple(int(r) for r in rows),
                    f"{path.stem}: {len(rows)} galaxies selected"))
with st.expander("Labels of the galaxies shown"):
    st.dataframe(selected)
