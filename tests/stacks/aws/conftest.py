"""The AWS driver's fixtures (a real moto server and a stack made in it, tests/modelops/targets/conftest.py) for the
tests that hold the rendered program against what the driver does at run time (test_ownership.py)."""

from tests.modelops.targets.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    _boto_session,
    _clients,
    aws_session,
    aws_stack,
    aws_target,
    moto_url,
)
