"""What several test files share: tiny data makers, local services, the KFP emulator and stubs."""

from pathlib import Path

# The checkout the tests run from (configs/, schemas/, infra/ are read from here).
REPO_ROOT = Path(__file__).resolve().parents[2]
# The sample configuration most tests start from (and override what they test).
SAMPLE_CONFIG = REPO_ROOT / "configs" / "sample.yaml"
