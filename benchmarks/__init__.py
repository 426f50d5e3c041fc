"""ganforge's benchmarks (not part of the installed package): ``python -m benchmarks.NAME --help``
from the repository root. See benchmarks/README.md."""
