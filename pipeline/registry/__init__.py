"""Data registries shipped with the package (instruments, plain-language rules)."""
