r"""The transferability study: every score against fine-tuning, on a zoo pretrained here.

    python -m experiments.transferability_study \
        --config=configs/transferability_study.py:quick --workdir=runs/transferability_quick

Pretrains the zoo it lacks, fine-tunes every candidate on every target (a learning-rate
grid on a validation split, several seeds), scores every candidate with every score, and
writes report.md, report.json and a score-vs-accuracy figure per target into --workdir.
Resumable: every result is a file in --workdir, skipped when present; run it again after
an interruption. Presets and their sizes: configs/transferability_study.py;
what it computes: transjax/transferability/study.py and docs/transferability.md.
"""

from absl import app

from transjax import cli

def _define_flags():
  """The binary's flags, by name (`cli.BinaryFlags`: defined when it runs, not on import)."""
  from configs import transferability_study as canonical  # pylint: disable=import-outside-toplevel
  return cli.define_run_flags(
      "configs/transferability_study.py:<smoke|quick>; override fields with "
      "--config.finetune.num_steps=100 --config.bootstrap=200 ...",
      "Folder of the study: pretraining runs, one file per result, report.md.",
      fields=cli.preset_fields(canonical.get_config))


_FLAGS = cli.BinaryFlags(_define_flags)


def main(argv):
  del argv
  cli.setup_logging()
  from transjax.transferability import study  # pylint: disable=import-outside-toplevel
  report = cli.run_or_exit(study.run_study, _FLAGS.config, _FLAGS.workdir)
  goal = report["goal"]
  print(f"report: {_FLAGS.workdir}/report.md; goal "
        f"{'met' if goal.get('met') else 'not met'} (best theory {goal.get('best_theory')}, "
        f"best baseline {goal.get('best_baseline')})")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
