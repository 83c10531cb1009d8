"""Data: what the networks learn from and are scored on.

`datasets` (PROD and one-task synthetic pairs, paired folders), `real` (the benchmarks as
downloaded), `build` (`datasets.<phase>.type` -> dataset), `imagefolder` (listing, pairing and
decoding image folders once), `pairs` (`colora degrade`: synthetic pairs on disk). Nothing is
imported here, so `colora.data.imagefolder` stays as light as its own imports.
"""
