"""Privacy arithmetic: exact epsilon, the OpenDP mechanism, workloads and the epsilon split, intervals, and the
consistency post-processing of noisy tables.
"""
