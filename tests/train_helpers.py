"""Tiny training configs shared by the training tests."""

from transjax.config import data_spec, training_defaults

SYNTH = "synthetic(num_train=256,num_test=64,seed=3)"


def tiny_config(**overrides):
  c = training_defaults()
  c.name = "tiny"
  c.data.train = data_spec(SYNTH, "train")
  c.data.test = data_spec(SYNTH, "test")
  c.batch_size = 32
  c.eval_batch_size = 64
  c.num_steps = 24
  c.log_every = 4
  c.eval_every = 8
  c.checkpoint_every = 8
  c.optim.lr = 0.05
  for key, value in overrides.items():
    target = c
    *parents, leaf = key.split(".")
    for p in parents:
      target = target[p]
    target[leaf] = value
  return c
