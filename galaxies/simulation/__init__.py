"""The simulated galaxies: GalSim's image of one, the prior they are drawn from, and the data sets.

`render` (GalSim's image of one galaxy, with noise), `sampler` (the prior inside the SNR
window), `generate` (data sets, in parallel), `recipes` (the project's data sets per profile),
`exploration` (the numbers behind the exploratory data analysis), `cosmos` (real COSMOS
galaxies that are not the model, drawn in a shear ring: the `cosmos` test set).
"""
