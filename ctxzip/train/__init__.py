"""How the embedded models are made. `python -m ctxzip.train <job> ...` runs one training job."""
