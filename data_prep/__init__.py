"""Dataset preparation: TFDS builders, raw-format readers and writers."""
