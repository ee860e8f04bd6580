# Rules of this phase; see workflow/rules/common.smk for helpers.
