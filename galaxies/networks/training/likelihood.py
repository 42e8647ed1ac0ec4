"""A network fine-tuned on each image's own likelihood: an amortized maximum-likelihood fit.

A network trained with the squared error on labels converges to the posterior mean under its
training prior, biased on a fixed galaxy. Trained instead to minimize the negative
log-likelihood of each image at its own estimate, it aims at the maximum-likelihood estimate:
no labels are needed, the image is compared with the differentiable model's rendering of the
network's estimate (`galaxies.inference.differentiable.model`).

The loss of a batch is the mean over its images of the project's NLL (`nll_and_gradient`):
a Gaussian of variance ``V = sigma^2 + mu`` per pixel, its ``log V`` term included. Its
gradient with respect to the network's weights is the chain rule through the estimate: the
model gives each image's exact Jacobian ``d mu / d theta`` (forward-mode autodiff, batched),
hence ``g = d NLL / d theta``; the network's outputs are standardized labels
``z = (theta - mean) / std``, so ``d NLL / d z = g * std``. Keras is handed that vector as the
"target" of a linear surrogate loss, ``sum(target * z)`` (`surrogate_loss`), whose gradient with
respect to the weights is then exactly the NLL's: any Keras backend and the usual
``train_on_batch`` do the back-propagation. With ``precondition`` the step direction is the
Gauss–Newton one instead (``F^-1 g``, the Fisher matrix at the estimate): the same fixed
point, the maximum-likelihood estimate, with every parameter moved in units of its own bound
rather than dominated by the best-measured one.

Estimates outside the generator's box (`galaxies.inference.differentiable.fit.BOX`) are rendered at the
box's edge; a parameter on an edge whose gradient points out of the box gets no gradient (a
projected gradient, as the fit's active set).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from galaxies.runtime.errors import InputError

__all__ = ["nll_and_gradient", "surrogate_loss", "LikelihoodTuner"]


def nll_and_gradient(images, psf_fwhm, sigma, theta, model, precondition: bool = False):
    """``(nll, gradient, theta_in_box)``: the NLL (B,) of each image at ``theta`` (B, 5) and
    its gradient (B, 5) with respect to the labels (with ``precondition``, the Gauss–Newton
    direction ``F^-1 g`` instead), ``theta`` clipped into the box where it is rendered."""
    from galaxies.inference.differentiable.bound import covariances, fisher_matrices
    from galaxies.inference.differentiable.fit import BOX

    images = np.asarray(images, dtype=np.float64)
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    if images.ndim != 3 or theta.shape != (len(images), 5):
        raise InputError(f"images {images.shape} and theta {theta.shape}: expected (B, ny, nx) "
                         f"and (B, 5)")
    rows = len(images)
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (rows,))
    psf = None if model.psf is not None else np.broadcast_to(
        np.asarray(psf_fwhm, dtype=np.float64), (rows,))
    inside = np.clip(theta, BOX[:, 0], BOX[:, 1])
    mu, jac = model.images_and_jacobians(inside, psf)
    positive = mu > 0
    variance = sigma[:, None, None] ** 2 + np.where(positive, mu, 0.0)
    residual = images - mu
    nll = 0.5 * np.sum(residual**2 / variance + np.log(variance), axis=(1, 2))
    # d nll / d mu: the residual's term, and V's own (where V follows mu)
    dmu = -residual / variance + np.where(
        positive, 0.5 / variance - 0.5 * residual**2 / variance**2, 0.0)
    gradient = np.einsum("bipq,bpq->bi", jac, dmu)
    if precondition:
        cov = covariances(fisher_matrices(mu, jac, sigma))
        gradient = np.einsum("bij,bj->bi", np.nan_to_num(cov), gradient)
    held = ((inside <= BOX[:, 0]) & (gradient > 0)) | ((inside >= BOX[:, 1]) & (gradient < 0))
    return nll, np.where(held, 0.0, gradient), inside


def surrogate_loss(target, output):
    """``sum(target * output)`` per image: its gradient with respect to ``output`` is
    ``target`` (the NLL's gradient, computed outside the graph)."""
    import keras
    return keras.ops.sum(target * output, axis=-1)


@dataclass
class LikelihoodTuner:
    """Fine-tunes a `galaxies.networks.training.SavedModel` (its mean outputs) on images' NLL.

    ``step(images, psf_fwhm, sigma)`` takes one optimizer step on a batch and returns the
    batch's mean NLL before it; ``history`` keeps them. ``precondition`` uses the
    Gauss–Newton direction (see the module); ``optimizer`` is ``"adam"`` or ``"sgd"``
    (momentum 0.9). Batch normalization layers, if any, are frozen."""

    saved: object
    learning_rate: float = 1e-4
    precondition: bool = True
    optimizer: str = "adam"
    model: object = None
    history: list = field(default_factory=list)

    def __post_init__(self):
        import keras

        from galaxies.inference.differentiable.model import DifferentiableModel
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise InputError(f"learning_rate = {self.learning_rate} must be a positive number")
        if self.optimizer not in ("adam", "sgd"):
            raise InputError(f"optimizer = {self.optimizer!r}; choose adam or sgd")
        self.model = self.model or DifferentiableModel()
        # any batch normalization frozen (its inference statistics, at which `step`
        # differentiates, also in the step itself); the Xception builder has none
        for layer in self.saved.model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        optimizer = (keras.optimizers.Adam(self.learning_rate) if self.optimizer == "adam"
                     else keras.optimizers.SGD(self.learning_rate, momentum=0.9))
        self.saved.model.compile(optimizer=optimizer, loss=surrogate_loss)
        self._width = int(self.saved.model.outputs[0].shape[-1])

    def estimates(self, images, psf_fwhm, sigma) -> np.ndarray:
        """The network's estimates (B, 5) in label units."""
        return self.saved.predict(images, psf_fwhm, sigma)[0]

    def step(self, images, psf_fwhm, sigma) -> float:
        x = self.saved.inputs(images, psf_fwhm, sigma)
        out = np.asarray(self.saved.model.predict_on_batch(x))
        labels = self.saved.scalers["label"]
        theta = labels.inverse(out[:, :5])
        nll, gradient, _ = nll_and_gradient(images, psf_fwhm, sigma, theta, self.model,
                                            self.precondition)
        target = np.zeros((len(out), self._width), np.float32)
        # chain rule through z = (theta - mean) / std; preconditioned, the step is in labels'
        # units already and is brought to z's by dividing by std
        std = np.asarray(labels.std)
        target[:, :5] = gradient / std if self.precondition else gradient * std
        self.saved.model.train_on_batch(x, target)
        self.history.append(float(np.mean(nll)))
        return self.history[-1]

    def tune(self, images, psf_fwhm, sigma, steps: int, batch_size: int = 32,
             seed: int = 0) -> list[float]:
        """``steps`` steps on batches drawn (seeded) from ``images`` (N, ny, nx) with their
        PSF FWHMs and noise levels (N,); returns the batches' mean NLLs."""
        images = np.asarray(images)
        psf_fwhm = np.broadcast_to(np.asarray(psf_fwhm, np.float64), (len(images),))
        sigma = np.broadcast_to(np.asarray(sigma, np.float64), (len(images),))
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(int(steps)):
            batch = rng.choice(len(images), size=min(batch_size, len(images)), replace=False)
            out.append(self.step(images[batch], psf_fwhm[batch], sigma[batch]))
        return out
