"""Who is calling, and may they: AccessKeys, signatures, nonces."""
