"""ml_collections configs: base.py holds every field; each named config changes some."""
