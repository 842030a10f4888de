"""pg-parallel-advisor: why parallel query and pooling are under-used, and what to set instead."""

__version__ = "0.1.0"
