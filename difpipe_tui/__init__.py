"""DifPipe: move data between SSH hosts and keep edge apps serving."""

__version__ = "0.1.0"
