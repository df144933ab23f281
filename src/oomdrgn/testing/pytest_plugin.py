"""pytest plugin (entry point ``pytest11``): real kernels under QEMU as fixtures.

* ``oom_guest``: a booted :class:`oomdrgn.testing.OomGuest` of ``--oomdrgn-kernel``
  (default 6.12) or of the test's ``@pytest.mark.oomdrgn_kernel("6.1")``;
* ``oom_guest_factory``: ``factory(kernel, **options)`` for several guests.

Every guest is shut down and its files removed after the test, also when it
fails or is interrupted.
"""

from __future__ import annotations

import pytest

from . import OomGuest


def pytest_addoption(parser):
    group = parser.getgroup("oomdrgn")
    group.addoption("--oomdrgn-kernel", default="6.12",
                    help="kernel for the oom_guest fixture (5.10, 6.1, 6.12, 7.x)")


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "oomdrgn_kernel(name): the kernel the oom_guest fixture boots")


@pytest.fixture
def oom_guest_factory():
    guests = []

    def factory(kernel="6.12", **options) -> OomGuest:
        g = OomGuest(kernel, **options)
        guests.append(g)
        return g

    yield factory
    for g in guests:
        g.close()


@pytest.fixture
def oom_guest(request, oom_guest_factory) -> OomGuest:
    marker = request.node.get_closest_marker("oomdrgn_kernel")
    kernel = marker.args[0] if marker else request.config.getoption("--oomdrgn-kernel")
    return oom_guest_factory(kernel)
