"""``python -m bench [--quick]``: run every scenario and write the report."""

from bench.run import main

raise SystemExit(main())
