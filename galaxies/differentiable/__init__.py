"""A differentiable, batched model of the simulation's galaxy images in JAX, exact to GalSim.

`model` draws images and their Jacobians; `bound`, `fit` and `datasets` are the bound, the
fit and the refinement on it, for a batch and for a data set.
"""
