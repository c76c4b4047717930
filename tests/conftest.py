# SPDX-License-Identifier: Apache-2.0
"""Shared pytest configuration."""
from support import start_process  # noqa: F401  (the fixture that starts processes and always reaps them)


def pytest_addoption(parser):
    parser.addoption("--bless", action="store_true", default=False,
                     help="rewrite the golden files under tests/data/*/results/ from the current output")
