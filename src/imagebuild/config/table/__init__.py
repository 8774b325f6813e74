"""The rows of the settings table (config/settings.py puts them together), one module per section of
mkosi v22's man page, and what the rows are made of: parsers, matchers, computed defaults, shorthands."""
