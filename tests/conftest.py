"""Shared test configuration: hypothesis runs at least 200 examples per property."""

from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.support.markers",
    "tests.support.nats",
    "tests.support.postgres",
    "tests.support.backend",
    "tests.support.phone",
]

settings.register_profile(
    "outpost",
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("outpost")
