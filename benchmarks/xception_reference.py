"""The networks against the Bayes reference, for benchmarks/xception.py (``--reference``).

Prints, for the profile chosen, from the saved predictions and the cached posteriors
(`galaxies.inference.posterior_sets`; ``--compute-posteriors`` computes the missing ones, about a second a
galaxy on one core):

1. the issue's targets against the reference (`TARGETS`), each with MET or MISSED: the
   recommended network's normalized RMS on ``test`` over the bound-weighted posterior mean's
   (the best estimator for that metric), its RMS to the
   posterior mean (in bounds) on each fixed set inside its training domain, its normalized RMS
   against ``xception_v1``'s, and the uncertainty network's ``pred_std`` / posterior std and 68%
   coverage on every set;
2. the tables: for every estimator with predictions, the ratio on ``test``, the RMS to the
   posterior mean on every set, and for those with ``pred_std`` the std ratio and coverage;
   the references' own rows (``posterior mean``, ``bound-weighted posterior mean``) first;
   the posterior's coverage on ``test`` (drawn from the prior) checks the reference itself;
3. with ``--seeds K``: the recommended network retrained K times (seeds 0..K-1) in a temporary
   folder (models/ untouched), each judged as in 1 and 2: the mean and the spread
   (standard deviation over seeds) of its ratio on ``test`` and of its RMS to the posterior on
   every set.

With ``--test-rows N``, the recommended network's reference is first computed for the first N
rows of ``test`` (cached with the others; the pipeline's own are the profile's
``posterior_limit_random``), and every figure on ``test`` is over all the rows computed.

    python benchmarks/xception.py --profile quick --reference [--compute-posteriors] [--seeds 3]
        [--test-rows 300]
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from galaxies.evaluation import against_posterior
from galaxies.conventions import LABEL_COLUMNS
from galaxies.runtime import profiles
from galaxies.simulation import recipes

#: the issue's targets against the reference
TARGETS = {
    "ratio": {"flux": 1.10, "sersic_n": 1.15, "sersic_r": 1.10, "g1": 1.10, "g2": 1.10},
    "rms to posterior": 0.3,
    "std ratio": (0.9, 1.1), "coverage": (0.63, 0.73),
    "baseline network": "xception_v1",
}


def tables(profile, compute: bool = False, test_rows: int | None = None) -> dict[str, pd.DataFrame]:
    """`galaxies.evaluation.against_posterior.table` of every test set with a reference (test
    set -> table). ``test_rows``: first compute the reference of the recommended network's
    prior for that many rows of ``test`` (the profile's are a sample small enough for the
    pipeline; the ratio's sampling noise falls as one over their square root)."""
    out = {}
    if test_rows:
        against_posterior.reference(profile, profiles.RANDOM_TESTSET,
                                    against_posterior.prior_recipe("fit", profile), compute=True,
                                    progress=True, rows=test_rows)
    for testset in profiles.TESTSETS:
        try:
            if compute:
                for recipe in {against_posterior.prior_recipe("fit", profile),
                               *(n.rsplit("_", 1)[1] for n in against_posterior.predicted(
                                   profile, testset))}:
                    if recipe in recipes.RECIPES and hasattr(recipes.RECIPES[recipe].spec, "sersics"):
                        against_posterior.reference(profile, testset, recipe, compute=True,
                                                    progress=True)
            out[testset] = against_posterior.table(profile, testset)
        except FileNotFoundError as err:
            print(f"  {testset}: no reference ({err})")
    return out


def normalized_rms(profile, network: str):
    """``(per-galaxy normalized RMS of flux, n, r, g1, g2, galaxies)`` of ``network``'s
    predictions on ``test``, over every row with a bound
    (`galaxies.evaluation.testsets.against_crb`), so that two networks are compared on the
    same galaxies whatever rows their references hold; None without predictions."""
    from galaxies.evaluation import testsets
    estimator, trainset = network.rsplit("_", 1)
    try:
        table = testsets.against_crb(profile, estimator, trainset, [profiles.RANDOM_TESTSET])
    except FileNotFoundError:
        return None
    rows = table.loc[profiles.RANDOM_TESTSET]
    return rows.loc[list(LABEL_COLUMNS), "norm rmse"].to_numpy(), int(rows["n"].iloc[0])


def targets(profile, frames: dict, verdicts) -> None:
    name = profile.recommended
    test = frames.get(profiles.RANDOM_TESTSET)
    for parameter, limit in TARGETS["ratio"].items():
        what = f"{name} test {parameter} / bound-weighted mean"
        if test is None or name not in test.index.get_level_values(0):
            verdicts.line(what, "no figure", f"<= {limit:.2f}", None)
            continue
        row = test.loc[(name, parameter)]
        verdicts.line(what, f"norm RMS ratio {row['ratio']:.2f} ({row['n']:.0f} galaxies)",
                      f"<= {limit:.2f}", row["ratio"] <= limit)
    limit = TARGETS["rms to posterior"]
    for testset in profiles.FIXED_TESTSETS:
        frame = frames.get(testset)
        if frame is None or name not in frame.index.get_level_values(0):
            verdicts.line(f"{name} {testset} - posterior", "no figure", f"<= {limit}", None)
            continue
        values = frame.loc[name, "rms to posterior"][list(LABEL_COLUMNS)]
        inside = bool(frame.loc[name, "covers"].all())
        verdicts.line(f"{name} {testset} - posterior{'' if inside else ' (outside)'}",
                      " ".join(f"{v:.2f}" for v in values) + " CRB", f"<= {limit}",
                      bool((values <= limit).all()) if inside else None)
    other = TARGETS["baseline network"]
    both = [normalized_rms(profile, network) for network in (name, other)]
    if all(rms is not None for rms in both):
        (mine, rows), (theirs, _) = both
        verdicts.line(f"{name} test norm RMS vs {other}",
                      " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(mine, theirs))
                      + f" ({rows} galaxies)", "<= each", bool((mine <= theirs).all()))
    unc = profile.uncertainty
    (low, high), (cov_low, cov_high) = TARGETS["std ratio"], TARGETS["coverage"]
    for testset, frame in frames.items():
        if unc not in frame.index.get_level_values(0):
            verdicts.line(f"{unc} {testset}", "no predictions", "", None)
            continue
        rows = frame.loc[unc]
        mark = "" if rows["covers"].all() else " †"  # outside its training PSF / noise
        verdicts.line(f"{unc} {testset}{mark} pred_std / post std",
                      " ".join(f"{v:.2f}" for v in rows["std ratio"]), f"{low:g}..{high:g}",
                      bool(rows["std ratio"].between(low, high).all()))
        verdicts.line(f"{unc} {testset}{mark} coverage 68%",
                      " ".join(f"{100 * v:.0f}" for v in rows["coverage"]) + "%",
                      f"{100 * cov_low:g}..{100 * cov_high:g}%",
                      bool(rows["coverage"].between(cov_low, cov_high).all()))


def show(frames: dict) -> None:
    """The tables: ratio on test, RMS to the posterior on every set, uncertainties."""
    pd.set_option("display.width", 160)
    if profiles.RANDOM_TESTSET in frames:
        test = frames[profiles.RANDOM_TESTSET]
        print("test: normalized RMS / the bound-weighted posterior mean's (the best estimator "
              "for that metric: 1 = the Bayes reference; "
              f"{int(test.loc[against_posterior.POSTERIOR, 'n'].min())} galaxies)")
        ratio = test["ratio"].unstack("parameter")[list(LABEL_COLUMNS)].round(2)
        ratio["galaxies"] = test["n"].unstack("parameter").max(axis=1)  # each its own rows
        print(ratio.to_string(), "\n")
        print("test: normalized RMS (each galaxy's error over its bound), each estimator on the "
              "rows of its own reference")
        norm = test["norm rmse"].unstack("parameter")[list(LABEL_COLUMNS)].round(2)
        norm["galaxies"] = ratio["galaxies"]
        print(norm.to_string(), "\n")
    print("RMS of (estimate - posterior mean) / CRB, every set († outside the estimator's "
          "training PSF / noise)")
    wide = against_posterior.wide(frames, "rms to posterior")
    covers = against_posterior.wide(frames, "covers")["flux"].astype(bool)
    wide.index = [f"{e} {t}{'' if covers.loc[(e, t)] else ' †'}" for e, t in wide.index]
    print(wide.round(2).to_string(), "\n")
    print("coverage of the truth by posterior mean +- posterior std (0.68 on test, the prior's "
          "own draws, if the reference is right)")
    post = {t: f.loc[against_posterior.POSTERIOR, "posterior coverage"] for t, f in frames.items()}
    print(pd.DataFrame(post).T[list(LABEL_COLUMNS)].round(2).to_string(), "\n")
    rows = {}
    for testset, frame in frames.items():
        for name in frame.index.get_level_values(0).unique():
            if name not in (against_posterior.POSTERIOR, against_posterior.WEIGHTED) \
                    and frame.loc[name, "std ratio"].notna().all():
                rows[(name, testset, "median pred_std / post std")] = frame.loc[name, "std ratio"]
                rows[(name, testset, "coverage 68%")] = frame.loc[name, "coverage"]
    if rows:
        print("estimators with pred_std: against the posterior's std, and their coverage")
        print(pd.DataFrame(rows).T[list(LABEL_COLUMNS)].round(2).to_string(), "\n")


def seeds(profile, count: int, log=print) -> pd.DataFrame:
    """Retrain the recommended network ``count`` times (seeds 0..count-1) in a temporary
    folder and judge each (`against_posterior.judge_network`); prints and returns the per-seed
    figures."""
    from galaxies.evaluation.estimators import load
    from galaxies.evaluation.experiments import xception
    from galaxies.networks.training import fit

    name = profile.recommended
    estimator, trainset = name.rsplit("_", 1)
    recipe = against_posterior.prior_recipe(trainset, profile)
    records = []
    with tempfile.TemporaryDirectory(prefix="seeds-") as work:
        for seed in range(count):
            out = Path(work) / f"{name}-seed{seed}"
            fit(xception.config(name, profile, seed=seed), profile.dataset(trainset), out,
                estimator=estimator, verbose=0)
            records.extend({"seed": seed, **r} for r in against_posterior.judge_network(
                load(out), profile, recipe).to_dict("records"))
            mine = pd.DataFrame([r for r in records if r["seed"] == seed])
            log(f"  seed {seed}: " + "; ".join(
                f"{t} {c} " + " ".join(f"{v:.2f}" for v in part[c])
                for t, part in mine.groupby("testset", sort=False)
                for c in (("ratio", "rms to posterior") if t == profiles.RANDOM_TESTSET
                          else ("rms to posterior",))))
    runs = pd.DataFrame(records)
    if runs.empty:
        return runs
    print()
    summary = runs.groupby(["testset", "parameter"], sort=False)[
        ["ratio", "norm rmse", "rms to posterior"]].agg(["mean", "std"])
    print(f"{name} over {count} seeds (mean, std over seeds)")
    print(summary.round(3).to_string(), "\n")
    return runs


def main(profile, verdicts, compute: bool = False, seed_count: int = 0,
         test_rows: int | None = None) -> None:
    print(f"against the Bayes reference (posterior under the training prior; the first "
          f"{test_rows or profile.posterior_rows('test')} rows of test, "
          f"{profile.posterior_rows('snr60')} of each fixed set)")
    frames = tables(profile, compute, test_rows)
    targets(profile, frames, verdicts)
    print()
    if frames:
        show(frames)
    if seed_count:
        seeds(profile, seed_count)
