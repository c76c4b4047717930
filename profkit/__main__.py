# SPDX-License-Identifier: Apache-2.0
"""``python -m profkit`` runs the CLI."""
from profkit.cli import main

main()
