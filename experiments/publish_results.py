r"""Copies a reproduce run's REPORT.md and its figures into docs/ (docs/results.md).

    python -m experiments.publish_results --workdir=runs/quick --docs=docs
    python -m experiments.publish_results --workdir=runs/imagenet --docs=docs \
        --output=results_imagenet.md --figure_prefix=imagenet_

Figures referenced as `![...](<experiment>/<file>.png)` are copied to
`docs/figures/<figure_prefix><experiment>_<file>.png` and the links rewritten; links to results.json
files (not committed) become plain text naming the path in the run folder.
"""

from __future__ import annotations

import os
import re
import shutil

from absl import app, flags

from transjax import cli

_FLAGS = cli.BinaryFlags(lambda: dict(
    workdir=flags.DEFINE_string("workdir", "runs/quick",
                                "The reproduce run folder (with REPORT.md)."),
    docs=flags.DEFINE_string("docs", "docs", "Folder for the results page and figures/."),
    output=flags.DEFINE_string("output", "results.md", "File name of the page under --docs."),
    figure_prefix=flags.DEFINE_string("figure_prefix", "",
                                      "Prefix of the copied figures' names, so that two "
                                      "published runs (e.g. quick and imagenet) keep their "
                                      "own figures.")))

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]+\.png)\)")
_JSON = re.compile(r"\[([^\]]*)\]\(([^)]+\.json)\)")


def publish(workdir: str, docs: str, output: str = "results.md", figure_prefix: str = "") -> str:
  with open(os.path.join(workdir, "REPORT.md")) as f:
    report = f.read()
  figures = os.path.join(docs, "figures")
  os.makedirs(figures, exist_ok=True)

  def copy_figure(match: re.Match) -> str:
    source = os.path.join(workdir, match.group(2))
    name = figure_prefix + match.group(2).replace("/", "_")
    shutil.copyfile(source, os.path.join(figures, name))
    return f"![{match.group(1)}](figures/{name})"

  report = _IMAGE.sub(copy_figure, report)
  report = _JSON.sub(lambda m: f"`{m.group(2)}` (in the run folder)", report)
  run_name = os.path.basename(os.path.abspath(workdir))
  header = (f"<!-- Published from the REPORT.md of the reproduce run {run_name}/ by "
            "experiments/publish_results.py. -->\n")
  out = os.path.join(docs, output)
  with open(out, "w") as f:
    f.write(header + report)
  return out


def main(argv):
  del argv
  print(f"-> {cli.run_or_exit(publish, **_FLAGS.values())}")


if __name__ == "__main__":
  _FLAGS.define()
  app.run(main, flags_parser=cli.parse_flags)
