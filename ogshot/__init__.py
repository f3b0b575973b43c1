"""ogshot: social preview images, fast and careful."""

__version__ = "0.1.0"
