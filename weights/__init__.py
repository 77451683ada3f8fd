"""The shipped weights: manifest.json and the default model (see aecompress.zoo)."""
