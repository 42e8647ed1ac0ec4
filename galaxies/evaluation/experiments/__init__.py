"""One module per experiment, mirroring the notebook folders: what each notebook runs.

`xception` (``models/xception.ipynb``), `autoencoder` (``Project/autoencoder.ipynb``),
`autokeras` and `autokeras_space` (``experiments/autokeras/``), `gridsearch`
(``experiments/gridsearch/``), `denoise` (``experiments/denoising/``). They combine the
layers below (`galaxies.networks.training`, `galaxies.evaluation.estimators`, `galaxies.evaluation.testsets`) with the
profile's settings; nothing below imports them.
"""
