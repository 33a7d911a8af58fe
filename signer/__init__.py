"""HSM-backed firmware signing for GB smart-metering Suppliers."""
