"""The workflow's logic in plain, tested Python: what the Snakemake rules ask for.

The rule files (``workflow/rules/*.smk``) only declare rules; every path, target, setting, pretraining
source and resource they need comes from here, as functions of the validated config (the dict
``aam.config.check_config`` returns, defaults filled in). ``workflow/rules/common.smk`` binds them to
Snakemake's ``config`` and wildcards.

- :mod:`aam.workflow.targets`: artifact paths, logs and benchmarks, the default target, the inputs of
  the results page.
- :mod:`aam.workflow.settings`: the stages' ``--settings`` (canonical JSON, inline or as a file).
- :mod:`aam.workflow.sources`: where a run's encoder comes from (its study, a corpus, a bundled one),
  the corpus's studies.
- :mod:`aam.workflow.resources`: training jobs' layout, resources and launcher (local and SLURM).
- :mod:`aam.workflow.sequences`: the DNA sequence branch's runs, inputs and settings.
- :mod:`aam.workflow.commands`: pieces of the rules' shell commands.
- :mod:`aam.workflow.messages`: a failed job's own error line in Snakemake's error block; a results
  folder that cannot be written, before any job.
"""
