"""CDKTF constructs of the multi-node Batch platform."""
