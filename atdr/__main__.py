from atdr.cli import main

raise SystemExit(main())
