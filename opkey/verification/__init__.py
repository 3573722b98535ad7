"""The trust-and-verdict layer: whom a verifier trusts, and the one decision over the evidence.

Every front end (the command line, image verification, the examples, the admission gate)
verifies the same way, through these values:

* :class:`~opkey.verification.trust.Trust`: the trusted issuers, their settings and key
  sources (built from flags or a policy file by :meth:`Trust.build
  <opkey.verification.trust.Trust.build>`);
* :class:`~opkey.policy.signoff.Requirement`: who must have signed (one policy, or a
  multi-signer sign-off);
* :class:`~opkey.verification.verifier.Verifier`: the engine that checks each signature under
  the trust (with bounded caches) and decides the requirement;
* :class:`~opkey.verification.evidence.Evidence`: bundles and image signature layers;
* :class:`~opkey.verification.verdict.Verdict`: which requirement was met by which
  signature, and why each other one was not.

Submodules are imported on demand (``from opkey.verification.trust import Trust``), and the
same names are exported by :mod:`opkey` itself.
"""
