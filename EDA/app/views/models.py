"""Models: the trained estimators on the sliders' galaxy, and their predictions on data sets."""
import explorer_ui as ui
import streamlit as st

from galaxies.evaluation import evaluate
from galaxies.inference import crb
from galaxies.interfaces import app_support as support, plots
from galaxies.runtime import profiles
from galaxies.storage import files

st.title("Models")
profile = ui.current_profile()

st.subheader("Estimates for the simulated galaxy")
params = ui.galaxy_parameters()
images, _ = ui.render_params(params)
left, right = st.columns([1, 3])
left.image(plots.to_rgb(images["noisy"]), caption=f"noisy image, SNR {images['snr']:.1f}",
           width=200)
with right:
    ui.estimates(images["noisy"], params.psf_fwhm, params.sigma, truth=params.labels,
                 key="models")

st.subheader("Predictions on a data set")
try:
    table = support.list_prediction_files(profile)
except (files.FileFormatError, OSError) as err:
    st.error(f"A predictions file of profile {profile} cannot be read: {err}")
    st.stop()
if table.empty:
    st.info(f"No predictions yet for profile {profile}: run `make run PROFILE={profile}` "
            f"(they are written to results/{profile}/predictions/).")
    st.stop()

outside = [support.outside_training(t, s) for t, s in zip(table.trainset, table.testset)]
choice = st.selectbox(
    "predictions", range(len(table)), key="models_predictions",
    index=support.default_prediction(table, profile),
    format_func=lambda k: (f"{table.estimator[k]} trained on {table.trainset[k]}, "
                           f"tested on {table.testset[k]} ({table.n[k]} images)"
                           + (" †" if outside[k] else "")))
row = table.iloc[choice]
if outside[choice]:
    st.warning(f"† {row.testset} lies outside {row.trainset}'s PSF / noise: the network never "
               f"saw them in training, so these estimates are an extrapolation.")
testset = profiles.get(profile).dataset(row.testset)
if not testset.is_file():
    st.warning(f"The test set {testset} is missing, so the truth is unknown: run "
               f"`make datasets PROFILE={profile}`.")
    st.stop()
try:
    predictions = files.load_predictions(row.path)
    dataset = files.load_dataset(testset, fields=())
    pred, truth, _ = evaluate.aligned(predictions, dataset)
except (files.FileFormatError, ValueError, OSError) as err:
    st.error(f"{row.path.name} does not match {testset.name}: {err}")
    st.stop()
if support.one_galaxy(truth):  # a fixed set: the estimates' spread around the truth and the bound
    bound = crb.cramer_rao_bound(*truth[0], psf_fwhm=float(dataset.psf_fwhm[0]),
                                 sigma=float(dataset.sigma[0]))
    ui.show_figure(plots.estimates_vs_crb(truth[0], pred, bound, title=row.path.stem))
    st.caption("Histograms of the estimates of one galaxy over its noise realizations; dashed: "
               "the truth; solid: the Gaussian of an unbiased estimator at the Cramér–Rao bound.")
else:
    ui.show_figure(plots.true_vs_predicted(truth, pred, title=row.path.stem))
st.table(evaluate.summary(predictions, dataset).style.format(support.number))
st.caption(f"{support.number(predictions.seconds_per_image * 1000)} ms per image.")
