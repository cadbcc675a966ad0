from transferlimits.cli import main

raise SystemExit(main())
