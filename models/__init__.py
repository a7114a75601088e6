"""Models: the zoo of architectures (`models.zoo`) and the workflow around it.

training (fit), multi_worker, callbacks, run_dir (what a run directory holds),
evaluation (evaluate, predict), comparison (compare, study), embedding (embed).
"""
