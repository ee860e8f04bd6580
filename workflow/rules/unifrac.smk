# Rules of this phase; see workflow/rules/common.smk for helpers.


def unifrac_targets(dataset):
    """Final UniFrac outputs of one dataset (used by `rule all`)."""
    return []
