"""Joint engine: three non-colluding parties count organisations' 0/1 bucket
vectors with secure multiparty computation (MPyC) and release only noisy counts.

Modules: ``field`` (pinned prime), ``arith`` (uint64 GF(p) helpers),
``shares`` (organisation side: share and seal), ``layout`` (public plan
layout), ``noise`` (discrete Laplace and budget helpers), ``program`` (the MPC
program of one party), ``party`` (party process entry point), ``runner``
(start three local parties, TLS material), ``plan`` and ``party_home``, and
for a party on its own machine ``tls`` (addresses, certificates), ``wire``
(MPyC's network: bind, pin, lost peers) and ``remote`` (one party's run from a
job folder). Nothing here imports MPyC at module load: MPyC parses
``sys.argv`` when imported, so only the party process does.
"""
