"""Judging estimators: one interface to all of them, their accuracy against the bound, the report.

`estimators` (one interface for everything that predicts), `evaluate` (bias, spread and RMSE
against the bound), `testsets` (the profile's test sets predicted and judged),
`image_quality` (PSNR and SSIM of the denoisers), `report` (every estimator side by side),
`tradeoffs` (accuracy against cost), `ring_test` (shear m and c, flux and size bias, by
galaxy kind), `cosmos_report` (every cheap estimator on the `cosmos` set, the domain flag), `against_posterior` (estimators against the Bayes
reference), `experiments` (what each notebook runs).
"""
