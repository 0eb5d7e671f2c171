"""The five measurements. Each `run(env)` returns entries for the results file."""
