"""Chapter 3: overlay2 storage -- Docker's overlay2 graph driver, on disk exactly as Docker lays it out."""
