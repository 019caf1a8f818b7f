"""giftsync's benchmarks: figures measured against the sandbox over loopback, a real Redis and
real ``giftsync worker`` processes, kept here so anyone can re-run them.

Run them with ``python -m benchmarks.run`` (``--quick`` for a one-minute smoke of each,
``--only NAME`` for one). Each benchmark module exposes ``NAME``, ``TITLE``, ``FIGURES`` (the
labels it always reports) and ``run(quick: bool) -> Result``; none asserts anything about
speed. See benchmarks/README.md for what each one measures.
"""
