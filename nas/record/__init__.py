"""The search's record: the state in memory, its HDF5 store and the lock that keeps one writer."""
