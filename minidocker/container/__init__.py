"""Not yet written: see the chapter map in docs/chapters/README.md."""
