"""The controller process: one cycle, the run loop, the search policy, job preparation,
result ingestion, the operator inbox and operations."""
