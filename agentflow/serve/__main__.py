"""``python -m agentflow.serve serve --model DIR``."""

from __future__ import annotations

import sys

from agentflow.serve.cli import main

sys.exit(main())
