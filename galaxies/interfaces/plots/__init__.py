"""Figures shared by the notebooks, the report and the app (``from galaxies.interfaces import plots``).

Every function draws on a new or given matplotlib figure and returns it, so notebooks show it
and scripts can save it. Nothing here computes results; it only shows them.

`.images` (stamps and their display), `.data` (data sets, SNR, bounds) and `.results`
(estimates, learning curves, calibration), on the labels and styles of `.common`; every
figure is also ``plots.<name>``.
"""
from .common import LABEL_NAMES
from .data import bounds_vs_snr, correlation_heatmap, label_histograms, pair_plot, snr_dependence
from .images import denoising_examples, image_grid, sersic_strip, stretch, to_rgb
from .results import (accuracy_speed, by_training_size, compare_learning_curves, crb_chart,
                      error_vs_snr, estimates_vs_crb, learning_curves, ratio_bars,
                      rmse_and_crb_vs_snr, shear_bias, true_vs_predicted, true_vs_predicted_grid,
                      zscore_histograms)

__all__ = ["LABEL_NAMES", "label_histograms", "pair_plot", "snr_dependence", "correlation_heatmap", "bounds_vs_snr", "stretch", "image_grid", "to_rgb", "sersic_strip", "denoising_examples", "true_vs_predicted", "learning_curves", "ratio_bars", "crb_chart", "error_vs_snr", "compare_learning_curves", "zscore_histograms", "estimates_vs_crb", "rmse_and_crb_vs_snr", "true_vs_predicted_grid", "accuracy_speed", "shear_bias", "by_training_size"]
