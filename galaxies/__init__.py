"""galaxies: measuring the shape and brightness of simulated galaxies with neural networks.

Its layers, lowest first; a module imports only from its own layer and the ones before it
(`galaxies.runtime.code_dependencies.LAYERS`; docs/architecture.md draws the graph, and
tests/system/test_architecture.py checks both and regenerates this list):

<!-- layout: start -->
1. foundations:
   - `conventions.py`: The conventions every part of the project shares: units, stamp, labels, ranges, shear, SNR.
   - `runtime/`: How the code runs: errors, profiles, the console, resources, process pools and clusters.
   - `storage/`: Files the project writes and reads: whole or absent, and checked against their contracts.
2. simulation:
   - `simulation/`: The simulated galaxies: GalSim's image of one, the prior they are drawn from, and the data sets.
3. inference:
   - `inference/`: Estimates from the likelihood: the bound, the fits, the refinement, the posterior, HSM.
4. cutouts:
   - `cutouts/`: A person's own images: FITS cutouts and uploads, read, checked, brought to the stamp, measured.
5. networks:
   - `networks/`: Neural estimators: the Keras builders (`models`) and how they are trained (`training`).
6. evaluation:
   - `evaluation/`: Judging estimators: one interface to all of them, their accuracy against the bound, the report.
7. interfaces:
   - `interfaces/`: What a person uses: the command line, the pipeline behind `make run`, the app's logic, plots.
<!-- layout: end -->

Keras and TensorFlow are imported only when a network is built or loaded.
"""
__version__ = "0.1.0"
