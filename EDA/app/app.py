"""The galaxy explorer: simulate a galaxy, see its bounds, browse the data sets, try the
trained models, and measure your own cutout.

    make app                         # = .venv/bin/streamlit run EDA/app/app.py
    GALAXIES_PROFILE=smoke make app  # show the smoke profile's data and models

Every computation is in the `galaxies` package (`galaxies.interfaces.app_support`, `galaxies.simulation.exploration`,
`galaxies.interfaces.plots`); the pages under ``views/`` only lay it out.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # Streamlit Community Cloud runs the file without installing us
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="Galaxy explorer", page_icon=":material/blur_on:", layout="wide")

import explorer_ui as ui  # noqa: E402

HERE = Path(__file__).resolve().parent
page = st.navigation([
    st.Page(HERE / "views" / "simulator.py", title="Simulator", icon=":material/tune:", default=True),
    st.Page(HERE / "views" / "bounds.py", title="Bounds", icon=":material/insights:"),
    st.Page(HERE / "views" / "datasets.py", title="Data sets", icon=":material/photo_library:"),
    st.Page(HERE / "views" / "models.py", title="Models", icon=":material/model_training:"),
    st.Page(HERE / "views" / "your_image.py", title="Your image", icon=":material/upload_file:"),
])
ui.profile_selector()
page.run()
