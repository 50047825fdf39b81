"""Per-flow enrichment: address classes, GeoIP country/ASN, names seen on the wire, MAC vendors."""
