"""Build of netwatch's optional compiled core (``netwatch._core``, plain CPython C API), of
the live ring's block conversion (``netwatch._ring``), of the GeoIP search-tree walk
(``netwatch._mmdb``) and of the deep parsers' DNS message walk and TLS ClientHello reader
(``netwatch._deep``), the last three with the same flags and also optional.

Everything else is in pyproject.toml. The extension is optional: without a C compiler (or
when the build fails) setuptools warns and installs the pure-Python package, which runs
the same pipeline through :mod:`netwatch.fastloop`. ``NETWATCH_PURE=1`` at build time skips
the extension altogether (and at run time ignores a built one: see :mod:`netwatch.core`).
Extra compiler flags come from the usual ``CFLAGS``/``LDFLAGS`` (``./dev sanitize`` builds
it with ASan/UBSan that way).
"""

import os

from setuptools import Extension, setup

CORE = Extension(
    "netwatch._core",
    sources=["netwatch/_core.c"],
    # -ffp-contract=off: the fast loop computes packet times as Python does (sec + frac *
    # tick, two roundings); a fused multiply-add (aarch64) would round once and differ
    extra_compile_args=[
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Wconversion",
        "-Wno-sign-conversion",
        "-ffp-contract=off",
    ],
    libraries=["m"],  # nearbyint, fabs (the flow record's time rounding)
    optional=True,
)
# the live capture's TPACKET_V3 block -> pcap records conversion (netwatch/capture/afpacket.py)
RING = Extension(
    "netwatch._ring",
    sources=["netwatch/_ring.c"],
    extra_compile_args=CORE.extra_compile_args,
    optional=True,
)

# the MaxMind DB search-tree walk behind GeoIP lookups (netwatch/enrich/geo.py)
MMDB = Extension(
    "netwatch._mmdb",
    sources=["netwatch/_mmdb.c"],
    extra_compile_args=CORE.extra_compile_args,
    optional=True,
)

# the deep parsers' compiled part: the DNS message walk and the TLS ClientHello body reader
# (netwatch/deep/dns.py, netwatch/deep/tls.py)
DEEP = Extension(
    "netwatch._deep",
    sources=["netwatch/_deep.c"],
    extra_compile_args=CORE.extra_compile_args,
    optional=True,
)

setup(ext_modules=[] if os.environ.get("NETWATCH_PURE") == "1" else [CORE, RING, MMDB, DEEP])
