from imagine.cli import main

raise SystemExit(main())
