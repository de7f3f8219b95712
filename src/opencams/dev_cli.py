"""`opencams dev …`: tools for developers and benchmarks (not for production databases)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from opencams.cli_common import settings_or_exit
from opencams.errors import SchemaError, SecretKeyError
from opencams.store.seed.bulk import seed
from opencams.store.seed.generate import SeedError, SeedPlan

dev_app = typer.Typer(
    help="Developer tools: bulk seeding for benchmarks.", no_args_is_help=True, add_completion=False
)


@dev_app.callback()
def _dev() -> None:
    """Developer tools: bulk seeding for benchmarks."""


@dev_app.command("seed")
def seed_cmd(
    space: Annotated[str, typer.Option(help="CustSpaceId to fill (provisioned beforehand).")],
    numbers: Annotated[int, typer.Option(help="New business numbers to create in the space.")] = 0,
    groups: Annotated[
        int, typer.Option(help="Groups to write in all, the hot number's included.")
    ] = 0,
    hot_number: Annotated[
        str | None,
        typer.Option(
            help="A business number of the space (created if absent) that gets "
            "exactly --hot-groups groups."
        ),
    ] = None,
    hot_groups: Annotated[int, typer.Option(help="Groups of --hot-number.")] = 0,
    participants_per_group: Annotated[
        int, typer.Option(help="Members of each group that exists at Meta (0-8).")
    ] = 3,
    number_prefix: Annotated[
        str, typer.Option(help="New numbers are this prefix followed by 9 digits.")
    ] = "8617",
    random_seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed, for repeatable data.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per executemany batch.")] = 50_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Write realistic groups straight into the database of the current settings.

    Accounts, spaces and the numbers you call are provisioned with `opencams apply` first; this
    adds numbers and groups (mixed statuses, subjects, members, invite links) in one transaction.
    Not for production databases: it bypasses Meta.
    """
    settings = settings_or_exit()
    plan = SeedPlan(
        space_id=space,
        numbers=numbers,
        groups=groups,
        hot_number=hot_number,
        hot_groups=hot_groups,
        participants_per_group=participants_per_group,
        number_prefix=number_prefix,
        random_seed=random_seed,
        batch_size=batch_size,
    )
    try:
        report = seed(settings, plan, progress=None if as_json else typer.echo)
    except (SeedError, SchemaError, SecretKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
        return
    typer.echo(
        f"seeded {report.groups} groups, {report.participants} participants, "
        f"{report.operations} pending operations, {report.numbers_created} numbers "
        f"into {report.backend} in {report.seconds:.2f} s: {report.rows_per_second:,.0f} rows/s "
        f"({report.groups / report.seconds if report.seconds else 0:,.0f} groups/s)"
    )
    typer.echo(
        "statuses: "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items()))
        + f"; deleted {report.deleted}"
    )


if __name__ == "__main__":
    dev_app()
