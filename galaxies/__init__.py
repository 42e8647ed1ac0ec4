"""galaxies: measuring the shape and brightness of simulated galaxies with neural networks.

Modules (one concept each): `simulate` (GalSim rendering and noise), `generate` (data sets),
`io` (the HDF5 contracts), `profiles` (sizes and paths), and the estimators and their
evaluation, which import TensorFlow/Keras only when used.
"""
__version__ = "0.1.0"
