import sys

from etcd_inspector.cli import main

sys.exit(main())
