"""Evidence about a machine around each test: journal and console slices, coredumps, the badness gate, boot times."""
