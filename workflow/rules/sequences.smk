# Rules of this phase; see workflow/rules/common.smk for helpers.


def sequence_targets(name):
    """Final outputs of one DNA sequence collection (used by `rule all`)."""
    return []
