"""Shared pytest set-up.

Four fake CPU devices are configured before JAX initialises its backend, so
that data-parallel code is tested as it runs on a multi-device host.
Single-device code is unaffected: it runs on the first device.
"""

import jax

jax.config.update('jax_num_cpu_devices', 4)
