"""Estimates from the likelihood: the bound, the fits, the refinement, the posterior, HSM.

`likelihood` (GalSim model images shared by the fit, refinement and bound), `crb` and
`crb_sets` (the Cramér–Rao bound of an image and of a data set), `galsim_fit` (the
maximum-likelihood fit on GalSim renders), `refine` (Gauss-Newton steps from another
estimate), `posterior` (the posterior mean under the training prior), `posterior_sets`
(each galaxy's posterior under a training prior, for a data set, cached), `hsm` (GalSim's own
shear estimators), `differentiable` (the same model in JAX: batched, differentiable, fast).
"""
