"""Training neural estimators: one concept per module.

==================  ====================================================================
module              what it owns
==================  ====================================================================
`.scaling`          `Standardizer` and the scaled network inputs (`model_inputs`)
`.config`           `TrainingConfig` and which fields of a data set a model reads
`.stream`           the seeded split, the eight orientations of the grid, training batches
`.noise`            fresh noise: a new realization of each noiseless image at every showing
`.losses`           the mean-squared and Gaussian negative log-likelihood losses
`.weighting`        the bound-weighted loss: each galaxy's error over its own Cramér–Rao bound
`.saved`            the model directory (`SavedModel`) and the padded prediction loop
`.loop`             the schedule, the callbacks and record (`RecordedFit`), and `fit`
`.uncertainty_head` a trained estimator's frozen layers with a standard-deviation head
`.autoencoder`      the autoencoder (labels as latent space): its directory and its fit
`.denoiser`         the image-to-image denoisers (EDSR, RDN): their directory and their fit
`.likelihood`       fine-tuning on each image's own NLL through the differentiable model
==================  ====================================================================

The names used everywhere are re-exported here: ``from galaxies.networks.training import fit,
TrainingConfig, SavedModel``. Nothing here imports Keras until a network is built or loaded.
"""
from .config import CONDITIONING, INPUTS, TrainingConfig, dataset_arrays, input_fields
from .loop import RecordedFit, fit, learning_rate
from .saved import HISTORY_FILE, TRAINING_FILE, SavedModel, predict_in_batches, read_info
from .scaling import Standardizer, model_inputs
from .stream import dihedral, split_rows, training_batches

__all__ = ["CONDITIONING", "INPUTS", "TrainingConfig", "dataset_arrays", "input_fields",
           "RecordedFit", "fit", "learning_rate", "HISTORY_FILE", "TRAINING_FILE", "SavedModel",
           "predict_in_batches", "read_info", "Standardizer", "model_inputs", "dihedral",
           "split_rows", "training_batches"]
