"""mnp-launch: turn an AWS Batch multi-node parallel job's nodes into one MPI world.

Standard library only (Python >= 3.9), so any image with Python and an MPI can
`pip install` it; the console script `mnp-launch` is the image's ENTRYPOINT.
"""

# The one place the version is written: launcher/pyproject.toml reads it (dynamic version).
__version__ = "0.2.0"
