"""Where the networks' bias on the fixed test galaxy comes from: the Bayes estimator, or the network.

An MSE-trained network approximates the posterior mean ``E[theta | image]`` under its training
labels' distribution. This script computes that posterior mean (`galaxies.inference.posterior`: the
recipes' prior, SNR cut included, times the project's likelihood, by importance sampling) and
sets the networks' bias beside it, in four parts:

1. ``snr60`` (one galaxy, many noise realizations): bias / CRB and RMSE / CRB of the posterior
   mean (the training prior; the same from half the draws, a convergence check; a prior
   without the 1/|g| shear density), of the networks (``--networks``) and of the fit, on the
   same first ``--realizations`` rows; the posterior's mass near the ends of the prior's box;
   the fit's and the networks' distance to the posterior mean, realization by realization.
2. The noiseless image of snr60 through each network (and the noiseless network): is the
   bias there without noise?
3. The random ``test`` set: each galaxy's error over its own bound binned by the truth of each
   parameter, by SNR and by true radius (shrinkage toward the prior's centre shows as errors
   opposite to the offset from it, strongest at the edges); and, for ``--galaxies`` test galaxies under
   ``--noise`` fresh noise realizations each (`galaxies.networks.training.noise.FreshNoise`), the part of
   the normalized MSE that is bias (`galaxies.evaluation.evaluate.bias_variance`), for the network and for
   the posterior mean of the first ``--posterior-galaxies`` of them.

    GALAXIES_ROOT=/path/to/run python benchmarks/bias.py --profile quick --realizations 200

Reads the profile's data sets, models and predictions; writes nothing. The proposal is rendered
with GalSim (~4-8 ms a draw on a shared CPU): ``--samples`` sets its size, and the effective
sample size printed says whether it was enough. The defaults took 6 minutes on a shared 2-core
machine (``--realizations 1000``). Figures are this run's.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from galaxies.conventions import LABEL_COLUMNS, RANGES
from galaxies.evaluation import evaluate
from galaxies.inference import crb, crb_sets, posterior
from galaxies.runtime import profiles
from galaxies.simulation import recipes
from galaxies.storage import files

SHORT = ("flux", "n", "r", "g1", "g2")
#: the posterior's mass near the ends of the prior's box (does the box shape the mean?)
EDGES = {"n < 1": lambda t: t[:, 1] < 1.0, "n > 5.5": lambda t: t[:, 1] > 5.5,
         "r < 0.15": lambda t: t[:, 2] < 0.15, "r > 0.55": lambda t: t[:, 2] > 0.55,
         "|g| > 0.6": lambda t: np.hypot(t[:, 3], t[:, 4]) > 0.6}


def covariance(truth, psf_fwhm, sigma) -> np.ndarray:
    """The inverse Fisher matrix (5, 5) of one galaxy (its diagonal: the bound squared)."""
    fisher = crb.fisher_matrix(*truth, psf_fwhm, sigma)
    scale = 1.0 / np.sqrt(np.diag(fisher))
    return np.linalg.inv(fisher * np.outer(scale, scale)) * np.outer(scale, scale)


def row(z: np.ndarray) -> list:
    return list(np.round(np.nanmean(z, axis=0), 2))


def show(title: str, table: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(table.to_string(float_format=lambda v: f"{v:.2f}"))


def split(name: str) -> tuple[str, str]:
    estimator, trainset = name.rsplit("_", 1)
    return estimator, trainset


def posterior_of(truth, images, psf, sigma, samples, seed, grid, shear_density=(True,)):
    cov = covariance(truth, psf, sigma)
    draws = posterior.render_proposal(posterior.Proposal(truth, cov), psf, samples, seed, grid)
    return [posterior.posterior_means(draws, images, sigma, s) for s in shear_density], cov, draws


def half(draws: posterior.Draws) -> posterior.Draws:
    """The first half of the proposal's draws: a check that the sample is large enough."""
    k = len(draws.theta) // 2
    return posterior.Draws(draws.theta[:k], draws.log_q[:k], draws.units[:k])


def fixed_galaxy(profile, args, grid, facts) -> None:
    ds = files.load_dataset(profile.dataset("snr60"), fields=("img", "img_nonoise"),
                            rows=args.realizations)
    truth, psf, sigma = ds.label[0].astype(float), float(ds.psf_fwhm[0]), float(ds.sigma[0])
    start = time.perf_counter()
    (trained, uniform), cov, draws = posterior_of(truth, ds.img, psf, sigma, args.samples,
                                                  args.seed, grid, (True, False))
    halved = posterior.posterior_means(half(draws), ds.img, sigma)
    edges = posterior.posterior_means(draws, ds.img, sigma, events=EDGES).probability
    seconds = time.perf_counter() - start
    bound = np.sqrt(np.diag(cov))
    facts["corr"] = cov / np.outer(bound, bound)
    R = len(ds)
    print(f"snr60: {R} realizations, truth {dict(zip(SHORT, truth.round(3)))}, psf {psf}, "
          f"sigma {sigma}, CRB {bound.round(4)}")
    print(f"posterior: {args.samples} proposal draws, {seconds:.0f} s; effective sample size "
          f"min {trained.ess.min():.0f}, 10% {np.percentile(trained.ess, 10):.0f}, "
          f"median {np.median(trained.ess):.0f}")
    print("posterior mass near the prior's edges (mean over realizations): "
          + ", ".join(f"{k} {v.mean():.4f}" for k, v in edges.items()))
    facts["edge mass"] = {k: float(v.mean()) for k, v in edges.items()}
    estimates = {"posterior mean (training prior)": trained.mean,
                 "  the same from half the draws": halved.mean,
                 "posterior mean (uniform box prior)": uniform.mean}
    for name in ("lbfgsb_fit", *args.networks):
        path = profile.predictions(*split(name), "snr60")
        if not path.is_file():
            print(f"({path.name} missing: left out)")
            continue
        p = files.load_predictions(path)
        take = np.searchsorted(p.index, np.arange(R))
        ok = (take < len(p)) & (p.index[np.minimum(take, len(p) - 1)] == np.arange(R))
        pred = np.full((R, 5), np.nan)
        pred[ok] = p.pred[take[ok]]
        estimates[name] = pred
    bias, rmse, stderr, count = {}, {}, {}, {}
    for name, pred in estimates.items():
        z = (pred - truth) / bound
        count[name] = int(np.isfinite(z).all(axis=1).sum())
        bias[name] = row(z)
        stderr[name] = float(np.nanmax(np.nanstd(z, axis=0)) / np.sqrt(count[name]))
        rmse[name] = list(np.round(np.sqrt(np.nanmean(z**2, axis=0)), 2))
    table = pd.DataFrame(bias, index=SHORT).T
    table["rows"] = pd.Series(count)
    table["± (1 s.e.)"] = pd.Series(stderr)
    show("snr60: bias / CRB (same realizations)", table)
    show("snr60: RMSE / CRB", pd.DataFrame(rmse, index=SHORT).T)
    show("snr60: posterior std / CRB (mean over realizations)",
         pd.DataFrame({"training prior": row(trained.std / bound),
                       "uniform box prior": row(uniform.std / bound)}, index=SHORT).T)
    gap = {}
    for name in ("lbfgsb_fit", *args.networks):
        if name in estimates:
            d = (estimates[name] - trained.mean) / bound
            gap[f"{name} - posterior mean: mean"] = row(d) + [
                float(np.nanmax(np.nanstd(d, axis=0)) / np.sqrt(R))]
            gap[f"{name} - posterior mean: rms"] = list(
                np.round(np.sqrt(np.nanmean(d**2, 0)), 2)) + [np.nan]
            facts.setdefault("gap", {})[name] = np.nanmean(d, axis=0)
            rows_d = int(np.isfinite(d).all(axis=1).sum())
            gap[f"{name} - posterior mean: mean"][-1] = float(
                np.nanmax(np.nanstd(d, axis=0)) / np.sqrt(rows_d))
    if gap:
        show("snr60: the fit and the networks against the posterior mean, realization by "
             "realization (/ CRB)",
             pd.DataFrame(gap, index=[*SHORT, "± (1 s.e.)"]).T)
    facts["bias"] = {k: np.array(v) for k, v in bias.items()}
    facts["stderr"] = stderr
    facts["snr60"] = (ds, truth, bound, draws)


def noiseless(profile, args, facts) -> None:
    from galaxies.networks.training import SavedModel
    ds, truth, bound, draws = facts["snr60"]
    clean = ds.img_nonoise[:1]
    bayes = posterior.posterior_means(draws, clean, float(ds.sigma[0]))
    rows = {"posterior mean on the noiseless image": row((bayes.mean - truth) / bound),
            "posterior mean: mean over realizations": list(
                facts["bias"]["posterior mean (training prior)"])}
    facts["noiseless"] = {"posterior": (bayes.mean[0] - truth) / bound}
    for name in (*args.networks, "xception-noiseless_v1"):
        path = profile.model_dir(*split(name))
        if not path.is_dir():
            continue
        model = SavedModel.load(path)
        pred, _ = model.predict(clean, ds.psf_fwhm[:1], ds.sigma[:1],
                                ds.psf_images()[:1] if model.config.psf_channel else None)
        rows[f"{name} on the noiseless image"] = row((pred - truth) / bound)
        if name in facts["bias"]:
            rows[f"{name}: mean over realizations"] = list(facts["bias"][name])
        facts.setdefault("noiseless", {})[name] = (pred[0] - truth) / bound
    show("snr60's noiseless image: error / CRB", pd.DataFrame(rows, index=SHORT).T)


def random_set(profile, args, grid, facts) -> None:
    from galaxies.networks.training import SavedModel
    from galaxies.networks.training.noise import FreshNoise
    path = profile.dataset("test")
    bounds = crb_sets.for_dataset(path, limit=profile.crb_limit, jobs=1, progress=False)
    ds = files.load_dataset(path, fields=())
    known = np.flatnonzero(np.isfinite(bounds).all(axis=1))
    truth, bound = ds.label.astype(float), bounds
    network = args.networks[0]
    estimates = {}
    for name in (network, "lbfgsb_fit"):
        p_path = profile.predictions(*split(name), "test")
        if p_path.is_file():
            p = files.load_predictions(p_path)
            pred = np.full((len(ds), 5), np.nan)
            pred[p.index] = p.pred
            estimates[name] = pred
    print(f"\ntest: {len(known)} galaxies with a bound (of {len(ds)}); errors over each galaxy's "
          f"own CRB; the fit has {int(np.isfinite(estimates.get('lbfgsb_fit', np.full((1, 5), np.nan))[known]).all(axis=1).sum())} of them")
    centre, spread = truth[known].mean(axis=0), truth[known].std(axis=0)
    slopes, thirds = {}, {}
    for name, pred in estimates.items():
        for j, column in enumerate(LABEL_COLUMNS):
            cuts = np.quantile(truth[known, j], [0, 1 / 3, 2 / 3, 1])
            t = evaluate.normalized_by(pred[known], truth[known], bound[known], truth[known, j], cuts)
            z = (pred[known, j] - truth[known, j]) / bound[known, j]
            ok = np.isfinite(z)
            slope = np.polyfit((truth[known, j][ok] - centre[j]) / spread[j], z[ok], 1)[0]
            slopes.setdefault(name, {})[SHORT[j]] = slope
            for third, value in zip(("low", "mid", "high"), t[(column, "bias")]):
                thirds.setdefault((name, third), {})[SHORT[j]] = value
            thirds.setdefault((name, "slope"), {})[SHORT[j]] = slope
    table = pd.DataFrame(thirds)
    table.columns.names = ["estimator", "third"]
    show("test: mean (pred - truth) / CRB of each parameter in the thirds of its true values "
         "(low, mid, high); slope: of that error on the truth in units of the set's std "
         "(negative: shrinkage toward the centre)", table)
    for name, pred in estimates.items():
        for label, values, bins in (("SNR", ds.snr[known], evaluate.SNR_BINS),
                                    ("true r", truth[known, 2],
                                     np.linspace(RANGES["sersic_r"].low, RANGES["sersic_r"].high, 6))):
            t = evaluate.normalized_by(pred[known], truth[known], bound[known], values, bins)
            show(f"test, {name}: per-galaxy normalized bias and RMS by {label}", t)
            facts.setdefault("by", {})[(name, label)] = t
    facts["slopes"] = slopes

    # bias and variance of single galaxies under fresh noise
    rows = known[:args.galaxies]
    clean = _clean_rows(path, rows)
    sigma = ds.sigma[rows].astype(float)
    noisy = np.stack([FreshNoise(seed=args.seed).realize(clean, sigma, (k,))[0]
                      for k in range(args.noise)], axis=1)  # (G, K, 64, 64)
    model = SavedModel.load(profile.model_dir(*split(network)))
    flat = noisy.reshape(-1, *noisy.shape[2:])
    pred, _ = model.predict(flat, np.repeat(ds.psf_fwhm[rows], args.noise),
                            np.repeat(ds.sigma[rows], args.noise))
    pred = pred.reshape(len(rows), args.noise, 5)
    table = {f"{network} ({len(rows)} galaxies)": evaluate.bias_variance(pred, truth[rows], bound[rows])}
    grid_rows = rows[:args.posterior_galaxies]
    if len(grid_rows):
        means, ess = [], []
        for g, r in enumerate(grid_rows):
            (result,), _, _ = posterior_of(truth[r], noisy[g], float(ds.psf_fwhm[r]), sigma[g],
                                        args.samples // 2, args.seed + 1 + g, grid)
            means.append(result.mean)
            ess.append(np.median(result.ess))
        pm = np.stack(means)
        table[f"posterior mean (first {len(grid_rows)})"] = evaluate.bias_variance(
            pm, truth[grid_rows], bound[grid_rows])
        table[f"{network} (same {len(grid_rows)})"] = evaluate.bias_variance(
            pred[:len(grid_rows)], truth[grid_rows], bound[grid_rows])
        print(f"\nposterior of test galaxies {list(grid_rows)}: median effective sample sizes "
              f"{np.round(ess, 0).tolist()}")
        per = pd.DataFrame(
            {f"row {r}: {kind}": list(np.round((est[g].mean(0) - truth[r]) / bound[r], 2))
             for g, r in enumerate(grid_rows) for kind, est in (("network", pred), ("posterior", pm))},
            index=SHORT).T
        show("test galaxies: bias / own CRB over the fresh noise realizations", per)
    joined = pd.concat(table, names=["estimator", "parameter"])
    show(f"test galaxies under {args.noise} fresh noise realizations each: per-galaxy bias and "
         "std / own CRB, and the bias's share of the normalized MSE", joined)
    facts["share"] = table


def _clean_rows(path, rows) -> np.ndarray:
    ds = files.load_dataset(path, fields=("img_nonoise",), rows=int(rows.max()) + 1)
    return ds.img_nonoise[rows]


def _list(values) -> str:
    return ", ".join(f"{s} {v:+.2f}" for s, v in zip(SHORT, values))


def conclusion(args, facts) -> str:
    """One paragraph stating what the figures of this run show."""
    bias, net = facts["bias"], args.networks[0]
    pm = bias["posterior mean (training prior)"]
    drift = np.abs(pm - bias["  the same from half the draws"]).max()
    text = (f"On snr60 the posterior mean under the training prior (the estimator an MSE-trained "
            f"network approximates) has bias/CRB {_list(pm)} (± {facts['stderr']['posterior mean (training prior)']:.2f}; "
            f"half the proposal's draws move it by at most {drift:.2f})")
    if "lbfgsb_fit" in bias:
        text += f", against the fit's {_list(bias['lbfgsb_fit'])}"
    if net in bias:
        text += f" and {net}'s {_list(bias[net])}"
    text += ". "
    uniform = bias["posterior mean (uniform box prior)"]
    moved = np.abs(uniform - pm)
    mass = facts["edge mass"]
    others = max(v for k, v in mass.items() if k != "n > 5.5")
    text += (f"Without the prior's 1/|g| shear density the posterior mean's bias is {_list(uniform)} "
             f"(changed by at most {moved[:3].max():.2f} on flux, n, r and {moved[3:].max():.2f} "
             f"on the shear). The posterior holds {mass['n > 5.5']:.3f} of its mass at n > 5.5 "
             f"and at most {others:.4f} near any other end of the prior's box")
    if others < 0.01 and moved[:3].max() < 0.1:
        rho = facts["corr"][1]
        text += (": the box's only edge within reach is n = 6, above the truth, and cutting a "
                 "distribution from above can only lower its mean, so the upward bias on n is "
                 "the likelihood's own skew toward high n, not a pull by the prior (flux and r "
                 f"correlate with n at {rho[0]:+.2f} and {rho[2]:+.2f} in the bound's covariance). ")
    else:
        text += ". "
    if "lbfgsb_fit" in facts.get("gap", {}):
        text += (f"The posterior mean lies {_list(-facts['gap']['lbfgsb_fit'])} CRB from the fit "
                 "(the maximum-likelihood point) on the same images. ")
    lead = np.abs(pm[:3]).mean()
    for name in args.networks:
        if name in facts.get("gap", {}):
            own = np.abs(bias[name][:3]).mean()
            gap = facts["gap"][name]
            worst = np.abs(gap[:3]).max()
            text += (f"{name}: mean |bias| on flux, n, r {own:.2f} CRB against the Bayes "
                     f"estimator's {lead:.2f}; network minus posterior mean {_list(gap)}, so "
                     + (f"on flux, n and r it is the posterior mean within {worst:.2f} CRB. "
                        if worst < 0.25 else
                        f"it adds up to {worst:.2f} CRB of its own (approximation error) to the "
                        "posterior mean's bias. "))
    if "noiseless" in facts:
        text += (f"On the noiseless image the posterior mean errs by {_list(facts['noiseless']['posterior'])}"
                 + (f", {net} by {_list(facts['noiseless'][net])}" if net in facts["noiseless"] else "")
                 + (f", the noiseless network by {_list(facts['noiseless']['xception-noiseless_v1'])}"
                    if "xception-noiseless_v1" in facts["noiseless"] else "") + " CRB. ")
    if "slopes" in facts and net in facts["slopes"]:
        text += (f"On the test set the slope of {net}'s normalized error on the truth is "
                 f"{_list(facts['slopes'][net].values())} per std of the set"
                 + (f" (the fit: {_list(facts['slopes']['lbfgsb_fit'].values())})"
                    if "lbfgsb_fit" in facts["slopes"] else "") + ". ")
    by_snr = facts.get("by", {}).get((net, "SNR"))
    if by_snr is not None:
        full = by_snr[by_snr[("n", "")] >= 10]
        rms = full.xs("rms", axis=1, level=1)[list(LABEL_COLUMNS)]
        text += (f"Its normalized RMS goes from {_list(rms.iloc[0])} at SNR {full.index[0]} to "
                 f"{_list(rms.iloc[-1])} at SNR {full.index[-1]}. ")
    for name, table in facts["share"].items():
        text += (f"Over fresh noise, bias share of the normalized MSE for {name}: "
                 + ", ".join(f"{s} {100 * v:.0f}%" for s, v in zip(SHORT, table["bias share"])) + ". ")
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=None, help="profile (default: GALAXIES_PROFILE or quick)")
    parser.add_argument("--realizations", type=int, default=200, help="snr60 rows (default 200)")
    parser.add_argument("--samples", type=int, default=8000, help="proposal draws (default 8000)")
    parser.add_argument("--networks", nargs="+", default=None,
                        help="<estimator>_<trainset> names; the first is judged on the test set "
                             "[default: the profile's recommended network, xception_v1 and its "
                             "uncertainty network]")
    parser.add_argument("--galaxies", type=int, default=16, help="test galaxies under fresh noise")
    parser.add_argument("--noise", type=int, default=64, help="fresh noise realizations per galaxy")
    parser.add_argument("--posterior-galaxies", type=int, default=4,
                        help="of those, how many get a posterior mean (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    profile = profiles.get(args.profile or "quick")
    args.networks = args.networks or [profile.recommended, "xception_v1", profile.uncertainty]
    grid = recipes.RECIPES["v1"].for_profile(profile).spec.sersic_grid
    facts: dict = {}
    fixed_galaxy(profile, args, grid, facts)
    noiseless(profile, args, facts)
    random_set(profile, args, grid, facts)
    print("\nConclusion: " + conclusion(args, facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
