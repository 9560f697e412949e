"""--help exits 0 and lists the chosen preset's config fields with their meaning, and every
preset of the file (transjax.config_help, through cli.parse_flags)."""

import subprocess
import sys

from tests.conftest import ROOT
from transjax import config_help


def test_field_comment_reads_the_line_or_the_lines_above():
  lines = ["  c.layer = ''   # '' = all parameters",
           "  # BatchNorm statistics:", "  # batch | running", "  c.bn_mode = 'running'",
           "  c.seed = 0", "NAMES = ('seed',)   # not an assignment of the field"]
  assert config_help.field_comment(lines, "layer") == "'' = all parameters"
  assert config_help.field_comment(lines, "bn_mode") == "BatchNorm statistics: batch | running"
  assert config_help.field_comment(lines, "seed") == ""


def test_describe_lists_presets_and_fields():
  text = config_help.describe(str(ROOT / "configs" / "landscape.py"), "smoke")
  assert "presets smoke, quick, full" in text and "fields of 'smoke'" in text
  assert "resolution       = 9" in text
  assert "vectorize        = 'vmap'   # vmap (fast)" in text


def test_help_exits_zero_with_the_fields():
  out = subprocess.run([sys.executable, "-m", "experiments.landscape", "--help",
                        "--config=configs/landscape.py:quick"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "--workdir" in out.stdout and "fields of 'quick'" in out.stdout
  assert "resolution       = 51" in out.stdout
