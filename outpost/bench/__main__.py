from outpost.bench import main

raise SystemExit(main())
