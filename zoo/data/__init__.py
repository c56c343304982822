"""Data: SEM TIFF I/O, simulation of SEM pairs, co-registration and training patches."""
