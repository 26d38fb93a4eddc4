"""``python -m agentflow.model_server serve --model DIR``."""

from __future__ import annotations

import sys

from agentflow.model_server.cli import main

sys.exit(main())
