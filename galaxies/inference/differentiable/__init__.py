"""A differentiable, batched model of the simulation's galaxy images in JAX, exact to GalSim.

`model` draws images and their Jacobians; `bound`, `fit` and `datasets` are the bound, the
fit and the refinement on it, for a batch and for a data set. Underneath: `tables` (GalSim's
own k-profiles, tabulated), `grid` (GalSim's FFT sizes), `render` (the k-space product, folded
and transformed). Beside: `posterior` (importance sampling on the model), `cutouts` (the fit
of a person's cutout), `sky` (a constant sky level fitted with the galaxy), `bulge_disc` (a
second model: a bulge plus a disc), `validation` (agreement with GalSim).
"""

#: What draws the model images of a likelihood (the fit, the refinement, the bound): the
#: differentiable JAX model (batched, autodiff) or GalSim (the reference, one image at a time).
RENDERERS = ("jax", "galsim")
