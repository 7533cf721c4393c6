"""Chapter 4: image layout and chain IDs -- digests, tar-split, the layer, image and reference stores."""
