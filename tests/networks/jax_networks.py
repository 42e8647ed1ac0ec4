"""Every network of the project built, trained a few steps on the fresh-noise stream and used
under the JAX backend.

Run by `tests/networks/test_jax_backend.py` in a fresh interpreter with ``KERAS_BACKEND=jax`` (the
backend is fixed when Keras is first imported), so that the full profile can train on a GPU
machine whose Python has JAX but no TensorFlow. Prints one ``OK <what>`` line per network.
Usage: ``KERAS_BACKEND=jax python tests/networks/jax_networks.py FOLDER``.
"""
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np


def main(folder: Path) -> None:
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    from galaxies.evaluation import estimators
    from galaxies.evaluation.experiments import autoencoder
    from galaxies.networks.training import TrainingConfig, denoiser, fit
    from galaxies.runtime import profiles
    from galaxies.simulation.generate import RandomSpec, generate
    from galaxies.storage import files

    data = generate(folder / "v2.h5", RandomSpec(sersics=4, psf_fwhm=0.5, sigma=None),
                    size=48, seed=5, jobs=1, progress=False, name="v2")
    ds = files.load_dataset(data)
    tiny = dict(entry_filters=4, block_filters=8, blocks=1, exit_filters=8)

    def on_the_stream(info):  # every network below trains on fresh noise (numpy draws)
        assert info["config"]["noise"] == "fresh" and info["backend"] == "jax", info["config"]

    # the Xception estimator with the noise level drawn and known, and a standard deviation
    config = TrainingConfig(model="xception", conditioning=("sigma",), uncertainty=True, epochs=2,
                            batch_size=16, patience=2, model_kwargs=tiny, noise="fresh",
                            noise_sigma=(200.0, 400.0))
    saved = fit(config, ds, out_dir=folder / "xception-nll_v2", verbose=0)
    losses = saved.history()["loss"]
    assert len(losses) == 2 and np.isfinite(losses).all(), losses
    on_the_stream(saved.info)
    again = fit(config, ds, verbose=0)  # the same seed, the same network
    np.testing.assert_allclose(again.history()["loss"], losses, rtol=1e-5)
    net = estimators.load(folder / "xception-nll_v2")
    pred, std = net.predict(ds.img[:5], psf_fwhm=ds.psf_fwhm[:5], sigma=ds.sigma[:5])
    assert pred.shape == std.shape == (5, 5) and np.isfinite(pred).all() and (std > 0).all()
    print("OK xception", flush=True)

    # the uncertainty head on a trained estimator's frozen layers: the estimator's means kept
    plain_config = TrainingConfig(**{**asdict(config), "uncertainty": False})
    plain = fit(plain_config, ds, out_dir=folder / "xception_v2", verbose=0)
    head = fit(config, ds, out_dir=folder / "xception-head_v2", verbose=0, base=plain)
    on_the_stream(head.info)
    mean, _ = plain.predict(ds.img[:5], psf_fwhm=ds.psf_fwhm[:5], sigma=ds.sigma[:5])
    head_mean, std = estimators.load(folder / "xception-head_v2").predict(
        ds.img[:5], psf_fwhm=ds.psf_fwhm[:5], sigma=ds.sigma[:5])
    np.testing.assert_allclose(head_mean, mean, rtol=1e-6)
    assert np.isfinite(std).all() and (std > 0).all()
    print("OK uncertainty head", flush=True)

    # the AutoKeras pick's builder: any plain Keras architecture, serialized
    inputs = keras.Input((64, 64, 1))
    hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(hidden))
    plain = keras.saving.serialize_keras_object(keras.Model(inputs, outputs))
    config = TrainingConfig(model="autokeras", epochs=1, batch_size=16, noise="fresh",
                            model_kwargs={"architecture": plain})
    saved = fit(config, ds, verbose=0)
    assert saved.predict(ds.img[:3])[0].shape == (3, 5)
    on_the_stream(saved.info)
    print("OK autokeras architecture", flush=True)

    # the autoencoder (labels as the latent space)
    smoke = profiles.get("smoke")
    config = autoencoder.config_from_profile(smoke, epochs=1, batch_size=16, limit=None)
    model = autoencoder.fit(config, ds, verbose=0)
    assert model.decode(ds.label[:2]).shape == (2, 64, 64)
    on_the_stream(model.info)
    print("OK autoencoder", flush=True)

    # the denoisers (noisy in, noiseless out)
    for name in ("edsr", "rdn"):
        config = denoiser.DenoiserConfig.from_profile(smoke, model=name, epochs=1, batch_size=16)
        model = denoiser.fit(config, ds, verbose=0)
        out = model.denoise(ds.img[:2], progress=False)
        assert out.shape == (2, 64, 64) and np.isfinite(out).all()
        on_the_stream(model.info)
        print(f"OK {name}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
