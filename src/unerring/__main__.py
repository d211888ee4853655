"""`python -m unerring`: the command line."""

from unerring.cli.main import main

raise SystemExit(main())
