"""The normalisation of build transcripts compared with dockerd's (tests/helpers/build_golden)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import build_golden as golden


class NormaliserTests(SynchronousTestCase):
    """L{golden.Normaliser} and L{golden.apply_newer_dockerd}."""

    def test_ids_numbered_by_first_appearance(self) -> None:
        """A full id and its short form get the same number; a new id the next one."""
        n = golden.Normaliser("/tmp/golden-x")
        full = "a" * 64
        text = f"sha256:{full}\n ---> {'a' * 12}\n ---> {'b' * 12}\n/tmp/golden-x/ctx"
        self.assertEqual(n(text), "sha256:<id 1>\n ---> <id 1>\n ---> <id 2>\n<tmp>/ctx")

    def test_progress_size_and_stdin_name(self) -> None:
        """The CLI's progress figure and the random name of a Dockerfile from stdin go."""
        out = golden.normalise(
            "Sending build context to Docker daemon  3.072kB\n"
            "the Dockerfile (.dockerfile.0123456789abcdef0123) cannot be empty",
            "/nowhere",
        )
        self.assertEqual(
            out,
            "Sending build context to Docker daemon  <size>\n"
            "the Dockerfile (.dockerfile.<random>) cannot be empty",
        )

    def test_stderr_chunks_joined(self) -> None:
        """Adjacent red (stderr) chunks are one."""
        self.assertEqual(
            golden.normalise("\x1b[91m/bin/sh: \x1b[0m\x1b[91m-c x\n\x1b[0m", "/nowhere"),
            "\x1b[91m/bin/sh: -c x\n\x1b[0m",
        )

    def test_newer_dockerd_rewrites(self) -> None:
        """20.10's lines become what a current dockerd prints."""
        self.assertEqual(
            golden.apply_newer_dockerd(
                "\x1b[0mRemoving intermediate container <id 4>\n"
                "dockerfile parse error line 3: unknown instruction: BOGUS\n"
                "Invalid signal: X\n"
                "failed to reach build target nosuch in Dockerfile"
            ),
            "\x1b[0m ---> Removed intermediate container <id 4>\n"
            "dockerfile parse error on line 3: unknown instruction: BOGUS\n"
            "invalid signal: X\n"
            'target stage "nosuch" could not be found',
        )

    def test_every_case_has_a_golden(self) -> None:
        """Each case has its golden file (captured from dockerd)."""
        for case in golden.CASES:
            self.assertTrue(golden.golden_path(case).exists(), case.name)
