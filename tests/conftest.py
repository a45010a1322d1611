"""Test-suite configuration."""

# tests/reference holds stored reference values and the scripts that generated them (some
# need packages CI does not install); they are data, not tests.
collect_ignore = ["reference"]
