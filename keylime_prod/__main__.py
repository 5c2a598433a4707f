"""``python -m keylime_prod`` is the ``produce`` command."""

from .cli import main

main()
