"""The search, pure numerics: the space, the spline, its maximisation, proposal strategies and the ask/tell optimizer.

No files, no processes, no torch: everything here is a function of arrays and a seed."""
