"""The differential conformance suite (issue 15): what a client sees from pyd, compared with what
it sees from dockerd.

A L{tests.conformance.scenarios.Scenario} is a script of docker CLI invocations and raw Engine
API requests. L{tests.conformance.runner} runs one against a daemon and returns a normalised
transcript (status codes, error messages, selected inspect/list JSON, exit codes, what a
container prints), with ids, times and addresses replaced by placeholders. The transcripts of a
real dockerd are recorded once into tests/data/conformance/ (``python -m tests.conformance
record``, or ``make conformance-record`` where Debian's docker.io is installed: the recorder
starts its own dockerd on a private socket, data root and exec root, never as a service) and
tests/e2e/test_conformance.py compares pyd with them on every run (CI has no dockerd). The
requests each scenario made are recorded with the transcript (L{tests.conformance.proxy}); from
them L{tests.conformance.coverage} says which endpoint and field of API 1.50 is checked against
dockerd on a success and on an error path (C{python -m tests.conformance coverage}).

The goldens are dockerd 20.10's answers (Debian's docker.io); where a current dockerd (28)
answers otherwise, pyd follows the current one and L{tests.conformance.runner.NEWER_DOCKERD}
rewrites the golden before the comparison, each rule with the moby source that justifies it.
"""
