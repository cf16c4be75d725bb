"""`python -m modelops.render STACK STACKS_DIR RESULT_FILE`: the child side of a rendering (render/mocks.py)."""

import sys

from modelops.render.mocks import main

sys.exit(main(sys.argv[1:]))
