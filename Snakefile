"""AAM Workflow: raw microbiome tables and DNA sequences to trained, evaluated models.

Run `snakemake --cores N` (demo config by default), or point it at your own config with
`--configfile`. Every rule calls one `aam <stage>` command; see README.md.
"""

import sys

from snakemake.utils import min_version

from aam.config import check_config
from aam.errors import InputError

min_version("9.0")


# The demo config is the default; a --configfile replaces it rather than being merged into it, so a
# user's config never inherits the demo's datasets.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Validated against workflow/schemas/config.schema.yaml (defaults filled in, as Snakemake's validate()
# does) plus the checks a schema cannot express; a bad config stops here with one line naming the key.
try:
    check_config(config, where=", ".join(map(str, workflow.overwrite_configfiles)) or "config/config.yaml")
except InputError as err:
    sys.exit(f"config error: {err}")


report: "workflow/report/workflow.rst"


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    run="[A-Za-z0-9_.-]+",
    target="[A-Za-z0-9_.-]+",
    metric="[a-z_]+",
    name="[A-Za-z0-9_.-]+",
    fold="r[0-9]+f[0-9]+",
    corpus="[A-Za-z0-9_.-]+",
    study="[A-Za-z0-9_.-]+",


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/unifrac.smk"
include: "workflow/rules/tokenize.smk"
include: "workflow/rules/corpus.smk"
include: "workflow/rules/aam.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/cv.smk"
include: "workflow/rules/sequences.smk"
include: "workflow/rules/qiime2.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_targets(),
    default_target: True
