"""Capture sources: where frames come from (capture files, AF_PACKET rings, tshark).

Each source class registers itself by kind (:class:`~netwatch.capture.source.Source`);
:func:`netwatch.capture.registry.build_source` builds the one the config asks for.
"""
