from outpost.cli import main

raise SystemExit(main())
