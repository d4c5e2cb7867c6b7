"""How a program is started under each isolation level: `bwrap` (namespaces, the normal case) and
`direct` (the program as the worker's own child, with rlimits and seccomp only: rlimits-only)."""
