"""The ``wowevent`` command line (also ``celery wowevent``): thin commands over the library.

:mod:`~wowevent_kombu.cli._common` holds what every command shares; each module adds one
group of commands; this module assembles them. Exit codes: 0 success, 1 a bus error, 2 bad
usage, 65 bad input data, 69 Redis unavailable.
"""

from __future__ import annotations

import click

from wowevent_kombu.cli._common import (
    EXIT_DATAERR,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliContext,
    accept_json_everywhere,
)
from wowevent_kombu.cli.breaker import breaker
from wowevent_kombu.cli.dlq import dlq
from wowevent_kombu.cli.log import log_group, replay_command
from wowevent_kombu.cli.main import cli
from wowevent_kombu.cli.observe import serve, status
from wowevent_kombu.cli.schemas import schemas

for _command in (log_group, replay_command, status, serve, dlq, schemas, breaker):
    cli.add_command(_command)
accept_json_everywhere(cli)

celery_command = click.Group(
    name=cli.name,
    commands=cli.commands,
    params=[p for p in cli.params if p.name != "app_path"],
    callback=cli.callback,
    help=cli.help,
)
"""The same group, mounted by Celery as ``celery wowevent`` (``celery.commands`` entry point).

Without ``-A``: Celery's own ``celery -A module wowevent ...`` names the app.
"""


def main() -> None:
    """Entry point of the ``wowevent`` script."""
    cli(prog_name="wowevent")


__all__ = [
    "EXIT_DATAERR",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliContext",
    "celery_command",
    "cli",
    "main",
]
