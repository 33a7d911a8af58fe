"""HSM-backed firmware signing for GB smart-metering Suppliers."""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (dynamic version)
