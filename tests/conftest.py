# SPDX-License-Identifier: Apache-2.0
"""Shared pytest configuration."""


def pytest_addoption(parser):
    parser.addoption("--bless", action="store_true", default=False,
                     help="rewrite the golden files under tests/data/*/results/ from the current output")
