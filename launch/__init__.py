"""Command-line entry points (absl flags only), run by `occnet_jax.cli.run`."""
