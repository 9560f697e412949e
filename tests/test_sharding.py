"""Data-parallel training on 8 simulated CPU devices matches 1 device."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import sys, jax, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from tests.train_helpers import tiny_config
    from transjax import runs, train
    out = {}
    for n in (1, 8):
      workdir = f"{sys.argv[1]}/dev{n}"
      result = train.train(tiny_config(num_devices=n, num_steps=12), workdir)
      out[n] = (result, runs.load_run(workdir).params)
    (r1, p1), (r8, p8) = out[1], out[8]
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p8)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(r1["final"]["test_loss"], r8["final"]["test_loss"], rtol=1e-4)
    print("sharded-matches")
""")


def test_eight_devices_match_one(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "sharded-matches" in proc.stdout
