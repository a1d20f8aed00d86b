"""medarena: a self-hostable platform for medical-imaging challenges."""

__version__ = "0.1.0"
