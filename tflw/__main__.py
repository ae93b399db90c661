import sys

from tflw.cli import main

sys.exit(main())
