"""Churn soak (issue 8): real test guests started and stopped for minutes under the collector and
the exporter; prints guests seen/expected, exits expected/counted, BPF map entries baseline/end
and RSS start/end. Needs root and /dev/kvm. ``python bench/soak.py --help`` for the knobs; the
defaults are 50 guests over at least 5 minutes, at most 4 alive at once. Not part of ``make bench``
(it takes minutes): ``make soak``."""

import sys

from kvmtop.testing.soak import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
