import sys

from featherbeat.cli import main

sys.exit(main())
