"""The run layer: one training run from a config to its run directory, above every other layer.

`experiment.build_experiment` turns a config into a compiled model and its data (tokenizer, task,
batch plan, the one training stream); `start.plan_start` decides from the run directory's files
whether a run starts, resumes or is refused (no TensorFlow: the command line asks before it
loads); `trainer.train` fits, evaluates, saves, exports and reports into a `tfbert.rundir.RunDir`. Compiling lives here:
`tfbert.modeling` builds and loads uncompiled models, `tfbert.training` supplies the optimizer,
callbacks and backups, `tfbert.tasks` the head, loss and metrics, and only a run puts them
together. Nothing below this package imports it; the command-line tools and the search sit above.
"""
