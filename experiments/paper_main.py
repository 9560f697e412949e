"""The one `main` of every paper-experiment binary: flags -> module.run -> a short table.

Each binary is its docstring plus `paper_main.run_app(<module>, <config file>)`.
"""

from __future__ import annotations

from types import ModuleType

from absl import app

from transjax import cli


def run_app(module: ModuleType, config_file: str) -> None:
  """Defines --config and --workdir, then runs `module.run(config, workdir)`."""
  config, workdir = cli.define_run_flags(
      f"{config_file}:<smoke|quick|full>. Override any field, e.g. "
      "--config.data_dir=/path/to/data --config.shared_dir=runs/sources.",
      "Output folder for results.json and figures; a re-run resumes "
      "unfinished training runs and reuses finished ones.")

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    cli.setup_logging()
    results = cli.run_or_exit(module.run, config.value, workdir.value)
    if results.get("summary"):
      print(results["summary"])
    for claim in results["claims"]:
      print(f"[{claim['verdict']}] {claim['element']}: {claim['ours']}")
    print(f"-> {workdir.value}/results.json")

  app.run(main, flags_parser=cli.parse_flags)
