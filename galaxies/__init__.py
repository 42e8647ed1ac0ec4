"""galaxies: measuring the shape and brightness of simulated galaxies with neural networks.

The package is layered; a module imports only from its own layer or the ones above it in this
list (docs/architecture.md draws the graph, and a test checks it):

1. foundations: `errors` (the exception policy), `resources` (disk, memory and process
   checks), `simulate` (GalSim rendering, noise, the simulation's constants), `files` (the
   HDF5 contracts), `atomic` (writes that are whole or absent), `profiles`, `parallel`,
   `sources`;
2. physics and statistics: `generate`, `recipes`, `likelihood`, `crb`, `crb_sets`, `baseline`
   (the fit), `refine`, `evaluate`, `image_quality`, `cutouts`, `eda`;
3. networks: `models` (Keras builders only), `training`;
4. estimators: `estimators` (one interface for everything that predicts), `testsets`;
5. experiments: `experiments.*`, one per notebook folder;
6. presentation: `plots`, `report`, `app_support`, `pipeline`, `cli`.

Keras and TensorFlow are imported only when a network is built or loaded.
"""
__version__ = "0.1.0"
