"""``python -m wowevent_kombu.cli``: the ``wowevent`` command."""

from wowevent_kombu.cli import main

main()
