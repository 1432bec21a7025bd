"""`python -m tools.drills`: run the failure drills."""

import sys

from tools.drills.drills import main

sys.exit(main())
