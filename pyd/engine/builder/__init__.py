"""The classic Dockerfile builder (layer: engine).

L{parser} turns a Dockerfile into stages of typed instructions, L{lexer} does the variable
substitution dockerd applies, L{ignore} matches C{.dockerignore} patterns, L{fs} reads the uploaded
context safely and copies files into a root filesystem, and L{builder} runs the steps against the
image store and the container service: L{base} (seams, options, the state of a build), L{cache}
(cache keys and commits), L{steps} (RUN, COPY, ADD).
"""
