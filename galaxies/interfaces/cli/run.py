"""``galaxies run``: the pipeline behind ``make run`` (`galaxies.interfaces.pipeline`)."""
from __future__ import annotations

import click

from .options import COUNT, PROFILE_OPTION, Command, fail


@click.command(cls=Command)
@PROFILE_OPTION
@click.option("--only", default=None, help="Comma-separated step names [default: all].")
@click.option("--force", is_flag=True, help="Rerun steps even when nothing changed.")
@click.option("--jobs", type=COUNT, default=None, help="Processes for data generation.")
@click.option("--list", "list_steps", is_flag=True, help="List the steps and exit.")
def run(profile, only, force, jobs, list_steps):
    """Build the data sets and execute every notebook; results go to results/<profile>/."""
    from galaxies.interfaces.pipeline import STEPS, StepFailed, run as run_pipeline, runs
    if list_steps:
        for step in STEPS:
            notebooks = " ".join(r.notebook + "".join(f"[{k}={v}]" for k, v in r.parameters)
                                 for r in runs(step))
            click.echo(f"{step.name:<14} {step.description}  {notebooks}")
        return
    try:
        run_pipeline(profile, only=only.split(",") if only else None, force=force, jobs=jobs)
    except StepFailed as err:  # a notebook failed: not the user's input, but no traceback either
        fail(f"error: {err}", 1)
