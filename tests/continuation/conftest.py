"""The jobs tests' moto server on loopback, isolated AWS environment and seeded resources."""

from tests.jobs.conftest import aws, isolated_env, moto_url  # noqa: F401 (fixtures)
