#!/usr/bin/env python3
"""Run an OOM scenario on a fetched kernel and keep its artifacts.

Usage: scripts/run-scenario.py {panic,kill,shell} KERNEL [--out DIR] [--format elf|kdump-zlib]
Same as ``python -m oomdrgn.testing.harness``, without installing oomdrgn.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from oomdrgn.testing.harness.__main__ import main  # noqa: E402

sys.exit(main())
