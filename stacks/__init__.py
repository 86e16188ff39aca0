"""CDKTF constructs of the multi-node Batch platform."""

from stacks import bindings

bindings.install()  # before any construct imports a resource module of the provider
