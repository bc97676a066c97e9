"""The reproduction: the runs behind RESULTS.md, their report and studies.

Above the library (`occnet_jax`) and data preparation (`data_prep`), which
never import it: the table of runs (`runs`), the paper's numbers and the
targets (`claims`), the report (`report`), the speed benchmark
(`benchmark`) and the trifocal label study (`label_study`).
"""
