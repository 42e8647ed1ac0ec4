"""Ready for the GPU: every network trains and predicts under Keras's JAX backend.

The GPU machine's Python has JAX but no TensorFlow, so the full profile must train there with
``KERAS_BACKEND=jax``. The backend is fixed when Keras is first imported, so the networks run
in a fresh interpreter (`tests/networks/jax_networks.py`) on the CPU build of JAX.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("jax_networks.py")


@pytest.mark.timeout(600)
def test_every_network_trains_and_predicts_under_jax(tmp_path):
    import jax  # noqa: F401 - in the test extra (requirements.lock): missing is a failure
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "GALAXIES_PROFILE": "smoke"}
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], env=env, text=True,
                          capture_output=True, timeout=580)
    assert done.returncode == 0, done.stderr[-3000:]
    for network in ("xception", "uncertainty head", "autokeras architecture", "autoencoder",
                    "edsr", "rdn"):
        assert f"OK {network}\n" in done.stdout, (network, done.stdout, done.stderr[-2000:])
