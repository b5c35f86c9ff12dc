"""HTTP layer: translates the Docker Engine API to engine calls and back. Wire JSON lives only here."""
