"""One module per benchmark stage; each has `run(bench) -> dict` of its measurements."""
