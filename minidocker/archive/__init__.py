"""Chapter 9: tar streams, the one safe extractor, and docker-archive save/load, import/export."""
