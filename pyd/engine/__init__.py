"""Engine: domain services, one per area. They own Docker's rules and speak in records."""
