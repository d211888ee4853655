from unerring.cli.main import main

raise SystemExit(main())
