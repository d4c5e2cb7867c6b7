"""`make bench`: the service on a real local stack, measured against its sandbox runner called directly.

The layout follows one run: `workloads` (what runs), `stack` (the processes of the Procfile),
`client` (HTTP clients), `floor` (the runner without HTTP or Redis), `suite` (what is compared
with what), `report` (figures, table, JSON line); `load` is the many-clients soak.
"""
