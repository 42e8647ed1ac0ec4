"""A network fine-tuned on each image's own likelihood: an amortized maximum-likelihood fit.

A network trained with the squared error on labels converges to the posterior mean under its
training prior, biased on a fixed galaxy. Trained instead on each image's own likelihood, it
aims at the maximum-likelihood estimate: no labels are needed, only the image and the
differentiable model (`galaxies.inference.differentiable.model`). Three objectives, ``target``:

* ``"nll"``: the mean over a batch of the project's NLL at the network's estimate
  (`nll_and_gradient`: a Gaussian of variance ``V = sigma^2 + mu`` per pixel, its ``log V`` term
  included). The model gives each image's exact Jacobian ``d mu / d theta`` (forward-mode
  autodiff, batched), hence ``g = d NLL / d theta``; the outputs are standardized labels
  ``z = (theta - mean) / std``, so ``d NLL / d z = g * std``. Keras is handed that vector as the
  "target" of a linear surrogate loss, ``sum(target * z)`` (`surrogate_loss`), whose gradient
  with respect to the weights is then exactly the NLL's. The NLL is badly conditioned in ``z``
  (its curvature ``(std / crb)^2`` spans orders of magnitude between parameters and galaxies),
  so plain steps follow the stiffest direction of the brightest galaxies. The Gauss–Newton
  direction ``F^-1 g`` handed instead of ``g`` does not cure it: the weights then move by
  ``J^T F^-1 g`` (``J = d theta / d weights``), whose product with the weights' gradient
  ``J^T g`` is ``g^T (J J^T) F^-1 g``, not positive in general, since ``J J^T`` and ``F^-1`` are
  two different metrics; it is not a descent direction, and it is not offered.
* ``"mle"``: each training image's maximum-likelihood estimate ``theta_hat`` (the batched JAX
  fit, `galaxies.inference.differentiable.fit.fit`, once per image) and its bound there
  ``crb_hat`` (from the Fisher matrix ``F`` at it, as `galaxies.inference.differentiable.bound`)
  are the targets of ``mean(((theta - theta_hat) / crb_hat)^2)``: the NLL's quadratic expansion
  about its minimum, ``(theta - theta_hat)^T F (theta - theta_hat) / 2``, with ``F`` replaced by
  the diagonal ``1 / crb_hat^2`` (the inverse of the covariance's diagonal, not ``F``'s own):
  every parameter in units of its own bound, their correlations ignored. In ``z`` its weight is
  ``(std / crb_hat)^2``, capped per parameter at `WEIGHT_CAP` times that parameter's median
  over the training images, so that a few bright galaxies do not dominate.
* ``"mle-fisher"``: the same targets with the whole expansion, ``d^T (S F S) d / 5`` for
  ``d = z - z_hat``, ``S = diag(std)``; an image whose ``S F S`` has a trace above `WEIGHT_CAP`
  times the median's is scaled down to it. It keeps the correlations the diagonal drops, so a
  move along a degenerate direction (flux, n and r together) costs what it costs in the NLL.

Toward the fits, images whose fit did not converge or whose bound is not finite are left out;
no label is read, and the fits' cost is paid once, before training.

Estimates outside the generator's box (`galaxies.inference.differentiable.fit.BOX`) are
rendered at the box's edge; a parameter on an edge whose gradient points out of the box gets
no gradient (a projected gradient, as the fit's active set).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from galaxies.runtime.errors import InputError

__all__ = ["TARGETS", "WEIGHT_CAP", "nll_and_gradient", "MLETargets", "mle_targets", "mle_weights",
           "surrogate_loss", "LikelihoodTuner"]

#: The objectives of `LikelihoodTuner` (see the module).
TARGETS = ("nll", "mle", "mle-fisher")
#: The cap of the weights toward the fits, a multiple of their median (see `mle_weights`).
WEIGHT_CAP = 100.0


def nll_and_gradient(images, psf_fwhm, sigma, theta, model):
    """``(nll, gradient, theta_in_box)``: the NLL (B,) of each image at ``theta`` (B, 5) and
    its gradient (B, 5) with respect to the labels, ``theta`` clipped into the box where it is
    rendered."""
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
    held = ((inside <= BOX[:, 0]) & (gradient > 0)) | ((inside >= BOX[:, 1]) & (gradient < 0))
    return nll, np.where(held, 0.0, gradient), inside


@dataclass
class MLETargets:
    """Each training image's maximum-likelihood estimate ``theta`` (N, 5), the bound at it
    ``crb`` (N, 5) and the Fisher matrix there ``fisher`` (N, 5, 5), and whether the fit
    converged with a finite, positive bound (``usable``, N)."""

    theta: np.ndarray
    crb: np.ndarray
    fisher: np.ndarray
    usable: np.ndarray

    def subset(self, rows) -> "MLETargets":
        """The targets of ``rows`` only."""
        return MLETargets(self.theta[rows], self.crb[rows], self.fisher[rows], self.usable[rows])

    def __len__(self) -> int:
        return len(self.theta)

    def save(self, path, force: bool = False) -> None:
        """Write the targets to an ``.npz`` file, atomically (an existing file only with
        ``force``): fits of many images, made once, are reused by every run."""
        from galaxies.storage import atomic
        with atomic.atomic_path(path, force=force) as tmp, open(tmp, "wb") as f:
            np.savez(f, **asdict(self))

    @classmethod
    def load(cls, path) -> "MLETargets":
        """The targets written by `save`."""
        names = [f.name for f in fields(cls)]
        with np.load(path) as f:
            missing = set(names) - set(f.files)
            if missing:
                raise InputError(f"{path}: not fitted targets (missing {', '.join(sorted(missing))})")
            return cls(**{k: f[k] for k in names})

    @classmethod
    def concatenate(cls, parts) -> "MLETargets":
        """The targets of several row ranges, one after the other."""
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))


def mle_targets(images, psf_fwhm, sigma, model, batch_size: int = 128) -> MLETargets:
    """The images' `MLETargets`, fitted in batches of ``batch_size``."""
    from galaxies.inference.differentiable.fit import fit

    images = np.asarray(images)
    rows = len(images)
    psf_fwhm = np.broadcast_to(np.asarray(psf_fwhm, np.float64), (rows,))
    sigma = np.broadcast_to(np.asarray(sigma, np.float64), (rows,))
    theta, crb = np.full((rows, 5), np.nan), np.full((rows, 5), np.nan)
    fisher = np.full((rows, 5, 5), np.nan)
    converged = np.zeros(rows, bool)
    for start in range(0, rows, int(batch_size)):
        part = slice(start, start + int(batch_size))
        result = fit(images[part], psf_fwhm[part], sigma[part], model=model)
        theta[part], crb[part], converged[part] = result.params, result.std, result.converged
        fisher[part] = result.fisher
    usable = (converged & np.all(np.isfinite(crb) & (crb > 0), axis=1)
              & np.all(np.isfinite(theta), axis=1) & np.all(np.isfinite(fisher), axis=(1, 2)))
    return MLETargets(theta, crb, fisher, usable)


def mle_weights(targets: MLETargets, std, metric: str = "bound",
                cap: float = WEIGHT_CAP) -> np.ndarray:
    """The ``"mle"`` loss's weights in standardized units for ``targets`` (all usable);
    ``std``: the labels per standardized unit, (5,) or per image (N, 5) (a logarithmic label's
    `Standardizer.units_per_step` at the target). ``metric`` ``"bound"``, ``(std / crb)^2``
    (N, 5), each parameter's capped at ``cap`` times its median over the rows; ``"fisher"``,
    ``S F S`` (N, 5, 5), ``S = diag(std)``,
    each image's scaled down where its trace exceeds ``cap`` times the median trace."""
    crb, fisher = np.atleast_2d(targets.crb), targets.fisher
    if not (np.all(np.isfinite(crb)) and np.all(crb > 0) and np.all(np.isfinite(fisher))):
        raise InputError("crb or fisher has non-finite or non-positive values; leave those "
                         "rows out (MLETargets.usable)")
    if not (np.isfinite(cap) and cap >= 1):
        raise InputError(f"cap = {cap} must be a number >= 1")
    std = np.broadcast_to(np.asarray(std, np.float64), crb.shape)
    if metric == "bound":
        weight = (std / crb) ** 2
        return np.minimum(weight, cap * np.median(weight, axis=0))
    if metric == "fisher":
        weight = fisher * std[:, :, None] * std[:, None, :]
        trace = np.einsum("bii->b", weight)
        return weight * np.minimum(1.0, cap * np.median(trace) / trace)[:, None, None]
    raise InputError(f"metric = {metric!r}; choose bound or fisher")


def surrogate_loss(target, output):
    """``sum(target * output)`` per image: its gradient with respect to ``output`` is
    ``target`` (the objective's gradient, computed outside the graph)."""
    import keras
    return keras.ops.sum(target * output, axis=-1)


@dataclass
class LikelihoodTuner:
    """Fine-tunes a `galaxies.networks.training.SavedModel` (its mean outputs) on images'
    likelihood, ``target`` one of `TARGETS` (see the module).

    ``step(images, psf_fwhm, sigma)`` takes one optimizer step on a batch's NLL and returns the
    batch's mean NLL before it; ``step_toward(images, psf_fwhm, sigma, theta_hat, weight)`` one
    step toward the fits, returning the batch's loss before it; ``tune`` takes many
    (fitting the targets first, toward the fits); ``history`` keeps the batches' figures.
    ``optimizer`` is ``"adam"`` or ``"sgd"`` (momentum 0.9). With ``decay_steps``, the learning
    rate follows a cosine from ``learning_rate`` to 1% of it over that many steps (then stays
    there), so that a long run ends with small steps; None keeps it constant. Batch
    normalization layers, if any, are frozen."""

    saved: object
    learning_rate: float = 1e-4
    target: str = "nll"
    optimizer: str = "adam"
    model: object = None
    history: list = field(default_factory=list)
    decay_steps: int | None = None

    def __post_init__(self):
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise InputError(f"learning_rate = {self.learning_rate} must be a positive number")
        if self.optimizer not in ("adam", "sgd"):
            raise InputError(f"optimizer = {self.optimizer!r}; choose adam or sgd")
        if self.target not in TARGETS:
            raise InputError(f"target = {self.target!r}; choose one of {', '.join(TARGETS)}")
        if self.decay_steps is not None and (isinstance(self.decay_steps, bool)
                                             or int(self.decay_steps) != self.decay_steps
                                             or self.decay_steps < 1):
            raise InputError(f"decay_steps = {self.decay_steps!r} must be a positive whole number "
                             "(or None for a constant learning rate)")
        import keras

        from galaxies.inference.differentiable.model import DifferentiableModel
        self.model = self.model or DifferentiableModel()
        # any batch normalization frozen (its inference statistics, at which `step`
        # differentiates, also in the step itself); the Xception builder has none
        for layer in self.saved.model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        rate = (self.learning_rate if self.decay_steps is None else
                keras.optimizers.schedules.CosineDecay(self.learning_rate, int(self.decay_steps),
                                                       alpha=0.01))
        optimizer = (keras.optimizers.Adam(rate) if self.optimizer == "adam"
                     else keras.optimizers.SGD(rate, momentum=0.9))
        self.saved.model.compile(optimizer=optimizer, loss=surrogate_loss)
        self._width = int(self.saved.model.outputs[0].shape[-1])

    def estimates(self, images, psf_fwhm, sigma) -> np.ndarray:
        """The network's estimates (B, 5) in label units."""
        return self.saved.predict(images, psf_fwhm, sigma)[0]

    def _train(self, x, gradient) -> None:
        """One step whose output gradient (mean over the batch) is ``gradient`` (B, 5) in z."""
        target = np.zeros((len(gradient), self._width), np.float32)
        target[:, :5] = gradient  # Keras averages the surrogate over the batch
        self.saved.model.train_on_batch(x, target)

    def step(self, images, psf_fwhm, sigma) -> float:
        x = self.saved.inputs(images, psf_fwhm, sigma)
        out = np.asarray(self.saved.model.predict_on_batch(x))
        labels = self.saved.scalers["label"]
        theta = labels.inverse(out[:, :5])
        nll, gradient, _ = nll_and_gradient(images, psf_fwhm, sigma, theta, self.model)
        self._train(x, gradient * labels.units_per_step(theta))  # chain rule through z
        self.history.append(float(np.mean(nll)))
        return self.history[-1]

    def step_toward(self, images, psf_fwhm, sigma, theta_hat, weight) -> float:
        """One step on the batch's mean of ``d^T W d / 5``, ``d = z - z_hat`` with ``z_hat``
        the standardized ``theta_hat`` (B, 5), ``W`` from `mle_weights`: (B, 5, 5), or its
        diagonal (B, 5), then ``mean(weight * d^2)``; returns the loss before the step."""
        x = self.saved.inputs(images, psf_fwhm, sigma)
        z = np.asarray(self.saved.model.predict_on_batch(x))[:, :5].astype(np.float64)
        labels = self.saved.scalers["label"]
        d = z - labels.transform(theta_hat).astype(np.float64)
        weight = np.asarray(weight, np.float64)
        if d.shape != z.shape or weight.shape not in (z.shape, z.shape + (5,)):
            raise InputError(f"theta_hat {np.shape(theta_hat)} and weight {weight.shape}: "
                             f"expected {z.shape} and {z.shape} or {z.shape + (5,)}")
        wd = weight * d if weight.ndim == 2 else np.einsum("bij,bj->bi", weight, d)
        self._train(x, 2.0 * wd / 5)  # d/dz of the loss (Keras means over the batch)
        self.history.append(float(np.mean(np.sum(wd * d, axis=1) / 5)))
        return self.history[-1]

    def tune(self, images, psf_fwhm, sigma, steps: int, batch_size: int = 32,
             seed: int = 0, targets=None) -> list[float]:
        """``steps`` steps on batches drawn (seeded) from ``images`` (N, ny, nx) with their
        PSF FWHMs and noise levels (N,); returns the batches' figures (see `step`,
        `step_toward`). Toward the fits, ``targets`` is `mle_targets`' result for these
        images (fitted here when None); unusable images are left out."""
        images = np.asarray(images)
        psf_fwhm = np.broadcast_to(np.asarray(psf_fwhm, np.float64), (len(images),))
        sigma = np.broadcast_to(np.asarray(sigma, np.float64), (len(images),))
        rows = np.arange(len(images))
        if self.target != "nll":
            targets = targets or mle_targets(images, psf_fwhm, sigma, self.model)
            rows = np.flatnonzero(targets.usable)
            if not len(rows):
                raise InputError("no image has a usable maximum-likelihood fit to train on")
            weight = np.zeros((len(images), 5) + ((5,) if self.target == "mle-fisher" else ()))
            per_step = self.saved.scalers["label"].units_per_step(targets.theta[rows])
            weight[rows] = mle_weights(targets.subset(rows), per_step,
                                       "fisher" if self.target == "mle-fisher" else "bound")
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(int(steps)):
            batch = rng.choice(rows, size=min(batch_size, len(rows)), replace=False)
            if self.target != "nll":
                out.append(self.step_toward(images[batch], psf_fwhm[batch], sigma[batch],
                                            targets.theta[batch], weight[batch]))
            else:
                out.append(self.step(images[batch], psf_fwhm[batch], sigma[batch]))
        return out
