import sys

from tinybert.cli.main import main

sys.exit(main())
