#!/usr/bin/env bash
# The differentiable model on a GPU: fits, refinements and bounds per second for 10,000 galaxies.
#
# For the device machine (JAX with CUDA, no TensorFlow): installs what else the package needs
# from wheels carried in .whl/ (pip download -d .whl galsim astropy h5py pandas ... on a machine
# with the network), then times the batched model on galaxies drawn from the prior, their noisy
# images made by the model itself (Poisson + read noise, numpy): no GalSim render, no data set.
# The galaxies are the prior's, in the SNR window 10-100 of the training sets.
# The Fourier tables are read from data/cache/ (carry it) or built once with GalSim.
#
#   bash benchmarks/gpu.sh [GALAXIES] [CHUNK]       (PYTHON=.venv/bin/python to try it on a CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
GALAXIES=${1:-10000}
CHUNK=${2:-1024}
PYTHON=${PYTHON:-python}
if [ -d .whl ]; then "$PYTHON" -m pip install -q --no-index --find-links .whl galsim astropy h5py pandas tqdm click >/dev/null; fi
"$PYTHON" -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || export PYTHONPATH="$PWD:${PYTHONPATH:-}"
"$PYTHON" - "$GALAXIES" "$CHUNK" <<'PY'
import sys, time
import jax
import numpy as np
from galaxies.inference.differentiable import bound, fit, validation
from galaxies.inference.differentiable.model import DifferentiableModel

count, chunk = int(sys.argv[1]), int(sys.argv[2])
print(f"JAX {jax.__version__} on {jax.devices()}; {count} galaxies, {chunk} per compiled call")
model = DifferentiableModel(chunk=chunk)
theta, psf = validation.validation_draw(2 * count + 32, seed=4)
theta, psf = theta[32:], psf[32:]  # the prior's draws, not its corners
rng = np.random.default_rng(0)
sigma = rng.uniform(200, 400, len(theta))
clean = model.images(theta, psf)
snr = np.sqrt(np.sum(clean**2, axis=(1, 2))) / sigma
keep = np.flatnonzero((snr >= 10) & (snr <= 100))[:count]  # the training sets' SNR window
theta, psf, sigma, clean = theta[keep], psf[keep], sigma[keep], clean[keep]
count = len(theta)
images = clean + rng.standard_normal(clean.shape) * np.sqrt(sigma[:, None, None] ** 2 + np.maximum(clean, 0))
for name, run in (("bounds", lambda: bound.cramer_rao_bounds(theta, psf, sigma, model)),
                  ("refinements (2 steps from truth + 1.5 CRB)", None),
                  ("fits (from adaptive moments)", lambda: fit.fit(images, psf, sigma, model=model))):
    if run is None:
        scale = bound.cramer_rao_bounds(theta, psf, sigma, model)
        start = theta + 1.5 * scale * rng.standard_normal(theta.shape)
        start = np.where(np.isfinite(start), start, theta)
        run = lambda: fit.refine(images, psf, sigma, start, 2, model=model)
    run()  # compile
    begin = time.perf_counter()
    run()
    seconds = time.perf_counter() - begin
    print(f"{name}: {count / seconds:,.0f} per second ({seconds:.1f} s wall for {count})")
PY
