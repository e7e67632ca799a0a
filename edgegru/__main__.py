import sys

from edgegru.cli import main

sys.exit(main())
