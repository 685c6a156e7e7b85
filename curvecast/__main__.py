import sys

from curvecast.cli import main

sys.exit(main())
