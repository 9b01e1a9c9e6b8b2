"""The text the docs and test/*.sh are generated from, in one place: the settings table (common.sh's assignments,
docs/settings.md), the registry's tables (docs/cpu-paths.md) and the module tables (architecture.md, testing.md)."""
