"""`python -m qlearning4k`: the `qlearning4k` command (`qlearning4k.cli`)."""

from qlearning4k.cli import main

raise SystemExit(main())
