"""Running external programs: finding them, running them, reporting their failures."""
