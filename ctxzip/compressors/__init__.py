"""One file per compression method; `base.Compressor` is the one class they all extend."""
