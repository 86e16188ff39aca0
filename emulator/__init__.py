"""Batch nodes on one machine: containers of the real image as Batch and ECS start them."""
